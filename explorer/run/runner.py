"""Forward passes with honest timings: what the Run tab and its API endpoints measure.

The rules: warm up before timing; run under `torch.inference_mode()`;
synchronise a GPU around every timed iteration; report the spread (median, p10, p90), never
one run. Before a model is built, weights + activations are estimated from the library's
exact arithmetic and a run over the memory budget is refused with both numbers.

No Gradio in here: the tab and the benchmark call the same functions.
"""

from __future__ import annotations

import math
import platform
import resource
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import resnext
from resnext import ResNeXtConfig

from resnext.validation import whole_number
from ..shared.devices import DeviceInfo, resolve_device
# The memory budget is shared with the model cache and the Attributions tab.
from ..shared.memory import MemoryPlan, RunRefused, check_budget, gigabytes, memory_plan
from ..shared.models import IMAGENET, MODEL_CACHE, ModelCache, WeightsChoice
from ..shared.predictions import top_predictions

BATCH_RANGE = (1, 1024)
WARMUP_RANGE = (0, 50)
ITERATIONS_RANGE = (1, 500)
# Defaults of the page's controls and the API's omitted values.
WARMUP_DEFAULT = 3
ITERATIONS_DEFAULT = 10
SWEEP_ITERATIONS_DEFAULT = 5  # per point of a batch-size sweep (each point is a full run)
SWEEP_MAX_DEFAULT = 16
INPUT_SEED = 0  # the benchmark input is the same seeded noise every run, so runs compare
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Progress = Callable[[float, str], None]


# What a user may ask for ------------------------------------------------------------------

def dtype_choices(device: DeviceInfo) -> list[str]:
    """The dtypes that make sense on `device`.

    float16 is offered on GPUs only: PyTorch's CPU convolutions in half precision are
    reference kernels, many times slower than float32, so a CPU figure would mislead.
    bfloat16 is offered on CUDA only where the GPU supports it (Ampere and later).
    """
    if device.kind == "cpu":
        return ["float32", "bfloat16"]
    if device.kind == "cuda":
        import torch

        index = int(device.key.split(":")[1])
        with torch.cuda.device(index):
            bf16 = torch.cuda.is_bf16_supported()
        return ["float32", "bfloat16", "float16"] if bf16 else ["float32", "float16"]
    return ["float32", "float16"]  # MPS: bfloat16 depends on the macOS version


def dtype_note(device: DeviceInfo) -> str:
    if device.kind == "cpu":
        return ("float16 is GPU-only here: CPU half-precision convolutions are slow reference "
                "kernels. bfloat16 is fast only on CPUs with AVX-512 BF16 or AMX.")
    if device.kind == "cuda" and "bfloat16" not in dtype_choices(device):
        return "bfloat16 needs an Ampere or newer GPU; this one runs float32 and float16."
    if device.kind == "mps":
        return "Apple MPS: peak memory is not tracked by PyTorch, so it is not reported."
    return "float16 and bfloat16 run on tensor cores where the GPU has them."


def _whole_number(name: str, value: Any, bounds: tuple[int, int]) -> int:
    return whole_number(name, value, *bounds)


@dataclass(frozen=True)
class RunRequest:
    """One validated forward-pass measurement: build with `make_request`."""

    config: ResNeXtConfig
    image_size: int
    device: DeviceInfo
    batch_size: int
    dtype: str
    channels_last: bool
    warmup: int
    iterations: int
    weights: WeightsChoice = WeightsChoice()


def make_request(config: ResNeXtConfig, image_size: int, device: str, batch_size: Any,
                 dtype: str = "float32", channels_last: bool = False, warmup: Any = 3,
                 iterations: Any = 10, weights: WeightsChoice | None = None) -> RunRequest:
    """Validate what a user (browser, API or test) asked for; ValueError says what is wrong."""
    info = resolve_device(device)
    batch_size = _whole_number("batch size", batch_size, BATCH_RANGE)
    warmup = _whole_number("warm-up passes", warmup, WARMUP_RANGE)
    iterations = _whole_number("timed passes", iterations, ITERATIONS_RANGE)
    allowed = dtype_choices(info)
    if dtype not in allowed:
        raise ValueError(f"dtype {dtype!r} is not offered on {info.key}; choose one of "
                         f"{', '.join(allowed)}. {dtype_note(info)}")
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be true or false, got {channels_last!r}")
    return RunRequest(config, image_size, info, batch_size, dtype, channels_last, warmup,
                      iterations, weights or WeightsChoice())


# Measuring --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Environment:
    torch_version: str
    python_version: str
    device: str
    device_name: str
    threads: int
    machine: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def cpu_model_name() -> str:
    """The CPU's marketing name (Linux: /proc/cpuinfo); else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: DeviceInfo) -> Environment:
    import torch

    if device.kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device.key))
        name += f" (CUDA {torch.version.cuda})"
    elif device.kind == "mps":
        name = "Apple GPU (MPS)"
    else:
        name = cpu_model_name()
    return Environment(torch.__version__, platform.python_version(), device.key, name,
                       torch.get_num_threads(), f"{platform.system()} {platform.machine()}")


@dataclass(frozen=True)
class Timings:
    """Seconds per batch of each timed iteration, and the figures derived from them."""

    seconds: tuple[float, ...]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        if len(ordered) == 1:
            return ordered[0]
        # Linear interpolation between closest ranks (numpy's default).
        position = (len(ordered) - 1) * q / 100
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class RunResult:
    config: ResNeXtConfig
    image_size: int
    batch_size: int
    dtype: str
    channels_last: bool
    warmup: int
    weights_label: str
    timings: Timings
    macs_per_image: int
    peak_memory_bytes: int | None  # CUDA: max_memory_allocated; CPU: peak RSS increase
    memory_note: str
    output_shape: tuple[int, ...]
    expected_shape: tuple[int, ...]
    estimate: MemoryPlan
    environment: Environment
    top5: list[tuple[str, float]] | None  # (class name, probability) for trained weights

    @property
    def median_ms(self) -> float:
        return self.timings.median * 1e3

    @property
    def p10_ms(self) -> float:
        return self.timings.percentile(10) * 1e3

    @property
    def p90_ms(self) -> float:
        return self.timings.percentile(90) * 1e3

    @property
    def images_per_second(self) -> float:
        return self.batch_size / self.timings.median

    @property
    def gflops_per_second(self) -> float:
        # FLOPs = 2 x MACs (conv + fc; BN, ReLU and pooling not counted), as the
        # Architecture tab states them.
        return 2 * self.macs_per_image * self.batch_size / self.timings.median / 1e9

    @property
    def shape_ok(self) -> bool:
        return self.output_shape == self.expected_shape

    def as_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "name": self.config.name,
            "preset": resnext.preset_name(self.config),
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "channels_last": self.channels_last,
            "warmup": self.warmup,
            "iterations": len(self.timings.seconds),
            "weights": self.weights_label,
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "iteration_ms": [s * 1e3 for s in self.timings.seconds],
            "images_per_second": self.images_per_second,
            "gflops_per_second": self.gflops_per_second,
            "macs_per_image": self.macs_per_image,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_note": self.memory_note,
            "output_shape": list(self.output_shape),
            "expected_shape": list(self.expected_shape),
            "shape_ok": self.shape_ok,
            "estimate_bytes": self.estimate.estimate_bytes,
            "budget_bytes": self.estimate.budget_bytes,
            "environment": self.environment.as_dict(),
            "top5": [{"class": name, "probability": p} for name, p in self.top5]
            if self.top5 is not None else None,
        }


class _RssSampler:
    """Peak resident memory of this process while a block runs, minus what it was before.

    `ru_maxrss` is exact but only ever rises over the process's life, so it tells the peak
    only when the run sets a new one; otherwise a thread sampling RSS every few ms gives it
    (it may miss a spike shorter than the interval). The thread competes for the cores, so
    `measure` runs it during the warm-up passes only, when there are any.
    """

    INTERVAL_S = 0.005

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.before = 0
        self.peak = 0

    @staticmethod
    def _max_rss_bytes() -> int:
        # Linux reports kilobytes, macOS bytes.
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL_S):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> "_RssSampler":
        self.before = self._process.memory_info().rss
        self._lifetime_peak_before = self._max_rss_bytes()
        self.peak = self.before
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        lifetime_peak = self._max_rss_bytes()
        if lifetime_peak > self._lifetime_peak_before:
            self.peak = max(self.peak, lifetime_peak)

    @property
    def increase(self) -> int:
        return max(0, self.peak - self.before)


class _Clock:
    """Seconds of one iteration on `device`: CUDA events on a GPU, perf_counter elsewhere.

    A GPU runs asynchronously: without synchronising, the host would time only the kernel
    launches. Each iteration is bracketed by synchronisations so a batch's latency is its own.
    """

    def __init__(self, device: DeviceInfo) -> None:
        import torch

        self.kind = device.kind
        self.torch = torch
        if self.kind == "cuda":
            self.device = torch.device(device.key)

    def sync(self) -> None:
        if self.kind == "cuda":
            self.torch.cuda.synchronize(self.device)
        elif self.kind == "mps":
            self.torch.mps.synchronize()

    def time(self, step: Callable[[], Any]) -> tuple[float, Any]:
        if self.kind == "cuda":
            cuda = self.torch.cuda
            start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
            self.sync()
            start.record()
            output = step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3, output  # elapsed_time is in ms
        self.sync()
        begin = time.perf_counter()
        output = step()
        self.sync()
        return time.perf_counter() - begin, output


@contextmanager
def _memory_tracking(device: DeviceInfo, passes: str = "the passes") -> Iterator[dict]:
    """Yields a dict that holds 'peak' (bytes or None) and 'note' when the block ends."""
    record: dict[str, Any] = {}
    if device.kind == "cuda":
        import torch

        index = torch.device(device.key)
        torch.cuda.reset_peak_memory_stats(index)
        before = torch.cuda.memory_allocated(index)
        yield record
        record["peak"] = torch.cuda.max_memory_allocated(index)
        record["note"] = (f"torch.cuda.max_memory_allocated during the passes (weights "
                          f"included); {gigabytes(record['peak'] - before)} above the weights and "
                          f"inputs already resident")
    elif device.kind == "cpu":
        with _RssSampler() as sampler:
            yield record
        record["peak"] = sampler.increase
        record["note"] = (f"rise of the process's RSS during {passes} over "
                          f"{gigabytes(sampler.before)} before them (weights resident; memory freed by "
                          f"earlier runs is reused, so a repeat run can read 0); peak "
                          f"{gigabytes(sampler.peak)}")
    else:
        yield record
        record["peak"] = None
        record["note"] = "not tracked on MPS"


def benchmark_input(request: RunRequest) -> Any:
    """Seeded standard-normal images, the scale of ImageNet-normalised pixels."""
    import torch

    generator = torch.Generator().manual_seed(INPUT_SEED)
    x = torch.randn(request.batch_size, 3, request.image_size, request.image_size,
                    generator=generator)
    x = x.to(device=torch.device(request.device.key), dtype=getattr(torch, request.dtype))
    if request.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def measure(model: Any, request: RunRequest, plan: MemoryPlan,
            progress: Progress | None = None) -> RunResult:
    """Time `model` (already on the request's device and dtype, in eval mode) as requested.

    The caller holds whatever lock guards `model`.
    """
    import torch

    x = benchmark_input(request)
    clock = _Clock(request.device)
    total = request.warmup + request.iterations
    seconds: list[float] = []
    output = None

    def passes(indices: range) -> None:
        nonlocal output
        for i in indices:
            warming = i < request.warmup
            if progress is not None:
                label = (f"warm-up {i + 1}/{request.warmup}" if warming else
                         f"timed iteration {i - request.warmup + 1}/{request.iterations}")
                progress(i / total, label)
            elapsed, output = clock.time(lambda: model(x))
            if not warming:
                seconds.append(elapsed)

    # On the CPU, peak memory comes from a thread sampling RSS, which competes with the
    # timed passes for the cores; every pass uses the same memory, so it samples during the
    # warm-up only (when there is one). CUDA's peak counter costs nothing: it spans the run.
    sample_warm_up_only = request.device.kind == "cpu" and request.warmup > 0
    with torch.inference_mode():
        with _memory_tracking(request.device, "the warm-up passes" if sample_warm_up_only
                              else "the passes") as memory:
            passes(range(request.warmup if sample_warm_up_only else total))
        if sample_warm_up_only:
            passes(range(request.warmup, total))
    if progress is not None:
        progress(1.0, "done")
    assert output is not None  # iterations >= 1
    result_top5 = None
    if request.weights.trained:
        # The weights' own class names (a trained run's dataset), not ImageNet's by count.
        from ..shared.weights_choice import class_names

        top = top_predictions(output[:1].cpu(), class_names(request.weights, request.config))
        result_top5 = [(name, probability) for _, name, probability in top]
    return RunResult(
        config=request.config, image_size=request.image_size, batch_size=request.batch_size,
        dtype=request.dtype, channels_last=request.channels_last, warmup=request.warmup,
        weights_label=request.weights.label, timings=Timings(tuple(seconds)),
        macs_per_image=resnext.complexity(request.config, request.image_size).macs,
        peak_memory_bytes=memory["peak"], memory_note=memory["note"],
        output_shape=tuple(output.shape),
        expected_shape=(request.batch_size, request.config.num_classes),
        estimate=plan, environment=environment(request.device), top5=result_top5)


@contextmanager
def _memory_format(model: Any, channels_last: bool) -> Iterator[None]:
    """Lay the shared model's weights out as asked, and back to contiguous afterwards.

    The cached model is shared with the Attributions tab, which expects the default layout;
    converting a model already in the asked format is a no-op.
    """
    import torch

    if not channels_last:
        yield
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    import torch

    return (torch.cuda.OutOfMemoryError,)


def _free_device_cache(device: DeviceInfo) -> None:
    import torch

    if device.kind == "cuda":
        torch.cuda.empty_cache()
    elif device.kind == "mps":
        torch.mps.empty_cache()


def run(request: RunRequest, progress: Progress | None = None,
        cache: ModelCache = MODEL_CACHE, budget_bytes: int | None = None) -> RunResult:
    """Check the memory budget, get the model from the shared cache, and measure it.

    A device running out of memory anyway is reported as `RunRefused` after the device's
    cache is emptied, so the app keeps serving.
    """
    plan = memory_plan(request.config, request.image_size, request.batch_size, request.dtype,
                       request.device, budget_bytes)
    check_budget(plan, f"{request.config.name} at batch {request.batch_size}, "
                       f"{request.image_size}×{request.image_size}, {request.dtype}")
    try:
        if progress is not None:
            progress(0.0, f"building {request.config.name} on {request.device.key}")
        entry = cache.get(request.config, request.weights, request.device.key, request.dtype)
        with entry.lock, _memory_format(entry.model, request.channels_last):
            return measure(entry.model, request, plan, progress)
    except _out_of_memory_errors() as error:
        _free_device_cache(request.device)
        raise RunRefused(f"{request.device.key} ran out of memory ({str(error).splitlines()[0]}); "
                         f"its cache was emptied. The estimate was {gigabytes(plan.estimate_bytes)} "
                         f"against a budget of {gigabytes(plan.budget_bytes)}: try a smaller batch.")
    except RuntimeError as error:
        # CPU allocation failures arrive as plain RuntimeErrors.
        if "can't allocate memory" in str(error) or "out of memory" in str(error).lower():
            _free_device_cache(request.device)
            raise RunRefused(f"{request.device.key} ran out of memory: {str(error)[:200]}")
        raise


# Batch-size sweep -------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepPoint:
    batch_size: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    images_per_second: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Sweep:
    points: list[SweepPoint]
    skipped: list[str] = field(default_factory=list)  # batch sizes over the budget, and why

    def as_dict(self) -> dict:
        return {"points": [p.as_dict() for p in self.points], "skipped": self.skipped}


def sweep_batches(max_batch: int) -> list[int]:
    max_batch = _whole_number("largest batch of the sweep", max_batch, BATCH_RANGE)
    return [b for b in SWEEP_BATCHES if b <= max_batch]


def sweep(base: RunRequest, max_batch: int, progress: Progress | None = None,
          cache: ModelCache = MODEL_CACHE, budget_bytes: int | None = None) -> Sweep:
    """Latency and throughput at batch 1, 2, 4, ... up to `max_batch` (powers of two).

    Each point is a full measurement (its own warm-up, then `base.iterations` timed passes);
    sizes over the memory budget are skipped and listed, not run.
    """
    batches = sweep_batches(max_batch)
    points: list[SweepPoint] = []
    skipped: list[str] = []
    for index, batch in enumerate(batches):
        request = RunRequest(base.config, base.image_size, base.device, batch, base.dtype,
                             base.channels_last, max(1, base.warmup), base.iterations,
                             base.weights)

        def step_progress(fraction: float, label: str, index: int = index, batch: int = batch
                          ) -> None:
            if progress is not None:
                progress((index + fraction) / len(batches), f"batch {batch}: {label}")

        try:
            result = run(request, step_progress, cache, budget_bytes)
        except RunRefused as refusal:
            skipped.append(f"batch {batch}: {refusal}")
            break  # larger batches need even more memory
        points.append(SweepPoint(batch, result.median_ms, result.p10_ms, result.p90_ms,
                                 result.images_per_second))
    if not points:
        raise RunRefused(skipped[0] if skipped else "nothing to sweep")
    return Sweep(points, skipped)


def weights_from_name(name: str | None) -> WeightsChoice:
    """The API's weights argument: 'random' (or 'random:SEED') or a published weights name."""
    text = (name or "random").strip()
    if text == "random" or text.startswith("random:"):
        seed_text = text.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise ValueError(f"weights 'random:SEED' needs a whole-number seed, got {text!r}")
        return WeightsChoice(seed=int(seed_text))
    if text in resnext.PUBLISHED_WEIGHTS:
        return WeightsChoice(kind=IMAGENET, name=text)
    raise ValueError(f"unknown weights {text!r}; use 'random', 'random:SEED' or one of "
                     f"{', '.join(resnext.PUBLISHED_WEIGHTS)}")
