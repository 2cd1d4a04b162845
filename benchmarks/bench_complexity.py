"""How long one `resnext.complexity` call takes, per preset (target: well under 5 ms).

Measures the uncached computation (the public function memoises), median of repeated calls,
and prints it next to the cost of building the same model on the meta device, in one run.

    python -m benchmarks.bench_complexity
"""

from __future__ import annotations

import statistics
import time

import resnext
from resnext.complexity import _complexity

TARGET_MS = 5.0


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    print(f"{'preset':<20} {'complexity ms':>14} {'of 5 ms':>8} {'meta build ms':>14} {'build/complexity':>17}")
    worst = 0.0
    for name, cfg in resnext.PRESETS.items():
        side = resnext.NATIVE_IMAGE_SIZE[name]
        arithmetic = median_ms(lambda: _complexity.__wrapped__(cfg, side, side), 50)
        build = median_ms(lambda: resnext.build_model(cfg, device="meta"), 5)
        worst = max(worst, arithmetic)
        print(f"{name:<20} {arithmetic:14.3f} {arithmetic / TARGET_MS:8.1%} {build:14.1f} {build / arithmetic:16.0f}x")
    cached = median_ms(lambda: resnext.complexity(resnext.PRESETS["resnext152_32x4d"], 224), 200)
    print(f"\nworst uncached call: {worst:.3f} ms ({worst / TARGET_MS:.1%} of the {TARGET_MS} ms target)")
    print(f"cached call (same config again): {cached * 1e3:.1f} us")


if __name__ == "__main__":
    main()
