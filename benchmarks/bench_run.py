"""Does the Run tab's measurement add overhead? And what does channels-last do on this CPU?

1. For resnet50, resnext50_32x4d and resnext101_32x8d at 224×224, batch 1: the latency the
   app reports (`explorer.run.runner.run`, with its memory sampler, progress callbacks
   and model cache) against a plain `model(x)` loop timed with perf_counter, on the same
   built model in the same process. Target: overhead within 5 %.
2. resnext50_32x4d at batch 8: the app's latency with channels-last against without.

Rounds alternate between the two sides so drift on a shared machine hits both alike. Each
side is summarised by the median of all its timed passes and by its fastest pass: on a
machine shared with other work, noise only ever adds time, so the fastest passes compare
the code paths themselves; the target is judged on those.

    python -m benchmarks.bench_run [--rounds 6] [--iterations 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import resnext
from explorer.run import runner
from explorer.shared.models import ModelCache

OVERHEAD_TARGET_PERCENT = 5.0
MODELS = ("resnet50", "resnext50_32x4d", "resnext101_32x8d")


def plain_loop_seconds(model: torch.nn.Module, x: torch.Tensor, warmup: int,
                       iterations: int) -> list[float]:
    """The simplest honest timing: inference_mode, warm-up, perf_counter around model(x)."""
    seconds = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(iterations):
            start = time.perf_counter()
            model(x)
            seconds.append(time.perf_counter() - start)
    return seconds


def app_seconds(request: runner.RunRequest, cache: ModelCache) -> list[float]:
    result = runner.run(request, progress=lambda fraction, label: None, cache=cache)
    return list(result.timings.seconds)


def _ms(seconds: list[float]) -> tuple[float, float]:
    """(median, minimum) in ms: the minimum is the pass least disturbed by other processes."""
    return statistics.median(seconds) * 1e3, min(seconds) * 1e3


def overhead(name: str, rounds: int, iterations: int, cache: ModelCache) -> tuple[float, float]:
    request = runner.make_request(resnext.PRESETS[name], 224, "cpu", 1, "float32", False,
                                  warmup=1, iterations=iterations)
    model = cache.get(request.config, request.weights, "cpu", "float32").model  # the same one
    x = runner.benchmark_input(request)
    app: list[float] = []
    plain: list[float] = []
    for _ in range(rounds):
        app += app_seconds(request, cache)
        plain += plain_loop_seconds(model, x, 1, iterations)
    (app_median, app_min), (plain_median, plain_min) = _ms(app), _ms(plain)
    by_median = 100.0 * (app_median / plain_median - 1)
    by_min = 100.0 * (app_min / plain_min - 1)
    verdict = "ok" if abs(by_min) <= OVERHEAD_TARGET_PERCENT else "OVER TARGET"
    print(f"{name:<18} {app_median:9.1f} {plain_median:9.1f} {by_median:+8.1f} % "
          f"{app_min:9.1f} {plain_min:9.1f} {by_min:+8.1f} %  {verdict}")
    return by_median, by_min


def channels_last_ratio(rounds: int, iterations: int, cache: ModelCache) -> float:
    name, batch = "resnext50_32x4d", 8
    contiguous: list[float] = []
    nhwc: list[float] = []
    for _ in range(rounds):
        for channels_last, sink in ((False, contiguous), (True, nhwc)):
            request = runner.make_request(resnext.PRESETS[name], 224, "cpu", batch, "float32",
                                          channels_last, warmup=1, iterations=iterations)
            sink += app_seconds(request, cache)
    (nchw_median, nchw_min), (nhwc_median, nhwc_min) = _ms(contiguous), _ms(nhwc)
    print(f"\n{name}, batch {batch}, 224×224, float32, CPU (NCHW time ÷ channels-last time; "
          f"above 1: channels-last is faster):")
    print(f"  median: NCHW {nchw_median:.1f} ms, channels-last {nhwc_median:.1f} ms, "
          f"ratio {nchw_median / nhwc_median:.2f}×")
    print(f"  fastest pass: NCHW {nchw_min:.1f} ms, channels-last {nhwc_min:.1f} ms, "
          f"ratio {nchw_min / nhwc_min:.2f}×")
    return nchw_median / nhwc_median


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="alternations per comparison")
    parser.add_argument("--iterations", type=int, default=3, help="timed passes per round")
    args = parser.parse_args(argv)
    cache = ModelCache(capacity=1)  # one model at a time: keeps RSS low on a small machine
    device = runner.environment(runner.resolve_device("cpu"))
    print(f"torch {device.torch_version}, {device.threads} threads, {device.machine}; "
          f"batch 1, 224×224, float32; {args.rounds} rounds × {args.iterations} timed passes "
          f"per side\n")
    print(f"{'':<18} {'--------- median ---------':>30} {'-------- fastest pass ----':>30}")
    print(f"{'model':<18} {'app ms':>9} {'plain ms':>9} {'overhead':>10} "
          f"{'app ms':>9} {'plain ms':>9} {'overhead':>10}")
    for name in MODELS:
        overhead(name, args.rounds, args.iterations, cache)
    channels_last_ratio(args.rounds, args.iterations, cache)


if __name__ == "__main__":
    main()
