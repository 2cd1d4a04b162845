"""`estimate`: how long a training run will take and how much memory it needs, up front.

Time: a few real training steps of the run itself, measured after warm-up: the engine's
own step (`engine._step`) at the run's batch size, memory format, recipe (its optimizer and
its augmentation) and, when asked, through torch.compile, on random images of the run's
size. Steps times the run's steps, plus each epoch's test pass at a third of a training
image's time per test image (forward only: a training image costs about 3x its forward
multiply-adds, the backward pass's two products per layer). On a CPU the machine's load
is read as well: a busy machine stretches every figure, and the estimate says so.

Memory: weights, their gradients and the optimizer's state (SGD's momentum: one copy of the
parameters; AdamW's moments: two) plus every layer's output for the batch, kept for
backward (`complexity(...).activations`). On CUDA the measured peak of the timed steps is
used when it is larger.

torch.compile: with `compile=True` the steps are measured eager, then compiled (the first
compiled call's extra time is the compile time), which says whether compiling pays for
this run's steps; without it the verdict is modelled from the benchmark's figures
(`COMPILE_SPEEDUP_MODEL`, `COMPILE_SECONDS_MODEL`).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ..complexity import complexity
from ..config import ResNeXtConfig
from ..units import byte_size, duration
from ..validation import whole_number
from .clock import TEST_IMAGE_SHARE, busy_note, machine_load
from .limits import BATCH_RANGE, EPOCHS_RANGE
from .recipes import Recipe, recipe_for

FLOAT32_BYTES = 4
TRAIN_MAC_FACTOR = 3
WARMUP_STEPS = 2  # allocations, kernel selection (and compiling, timed apart)
MIN_STEPS, MAX_STEPS, MIN_SECONDS = 3, 20, 1.0  # timed: at least 3 steps and 1 s, at most 20
# A CPU measurement of a batch whose activations need more than this is made at a smaller
# batch and scaled (a step's time is close to linear in the batch on a CPU).
MEASURE_BYTES = 2 * 1024 ** 3
# torch.compile, when not measured: benchmarks/bench_estimate.py on the README's shapes
# network, batch 64, channels-last, CPU: 1.16x faster steps after 8-35 s of compiling
# (issue 18); the slow end is used, so the model errs towards "does not pay".
COMPILE_SPEEDUP_MODEL = 1.16
COMPILE_SECONDS_MODEL = 35.0


@dataclass(frozen=True)
class CompileVerdict:
    """Whether torch.compile pays for a run: its compile time against the time it saves."""

    measured: bool  # True: compiled steps measured here; False: modelled (constants above)
    compile_seconds: float
    speedup: float  # eager step time / compiled step time
    saved_seconds: float  # over the run's steps
    steps: int
    failed: str | None = None  # why compiling failed here (the run would train eagerly)

    @property
    def pays(self) -> bool:
        return self.failed is None and self.saved_seconds > self.compile_seconds

    @property
    def phrase(self) -> str:
        if self.failed is not None:
            return f"torch.compile failed here ({self.failed}): the run would train eagerly"
        how = "measured just now" if self.measured else (
            f"modelled: {COMPILE_SPEEDUP_MODEL:g}x after {COMPILE_SECONDS_MODEL:.0f} s, the "
            f"benchmark's; tick it to measure")
        return (f"torch.compile {'pays' if self.pays else 'does not pay'} for this run "
                f"({how}): about {duration(self.compile_seconds)} of compiling for "
                f"{self.speedup:.2f}x faster steps, saving about "
                f"{duration(max(0.0, self.saved_seconds))} over its {self.steps:,} steps")

    def to_dict(self) -> dict[str, Any]:
        return {"measured": self.measured, "compile_seconds": self.compile_seconds,
                "speedup": self.speedup, "saved_seconds": self.saved_seconds,
                "pays": self.pays, "failed": self.failed, "phrase": self.phrase}


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole run: training steps, test passes (and compiling if asked)
    peak_bytes: int
    macs_per_second: float  # achieved by the measured training steps
    step_seconds: float  # one measured step at `measured_batch` (compiled if asked)
    measured_batch: int
    steps: int = 0  # the run's training steps
    load: float | None = None  # the 1-minute load average (CPU runs); None on a GPU
    cores: int | None = None
    compile: CompileVerdict | None = None

    @property
    def busy(self) -> bool:
        """More runnable processes than cores: the measured steps shared the CPU, and the
        run will share it too while that lasts (issue 18: at a load of 9 on 2 cores a run
        took 7.5 min for an estimated 2)."""
        return self.load is not None and self.cores is not None and self.load > self.cores

    @property
    def busy_note(self) -> str | None:
        return busy_note((self.load, self.cores)) if self.busy else None

    @property
    def phrase(self) -> str:
        return (f"about {duration(self.seconds)}, peak memory about "
                f"{byte_size(self.peak_bytes)}")

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "peak_bytes": self.peak_bytes, "phrase": self.phrase,
                "macs_per_second": self.macs_per_second, "step_seconds": self.step_seconds,
                "measured_batch": self.measured_batch, "steps": self.steps,
                "load": self.load, "cores": self.cores, "busy": self.busy,
                "busy_note": self.busy_note,
                "compile": self.compile.to_dict() if self.compile else None}


def estimate(cfg: ResNeXtConfig, data: Any, epochs: int, batch_size: int = 128,
             device: str | torch.device = "cpu", *, recipe: str | Recipe = "quick",
             channels_last: bool = False, compile: bool = False,
             mixed_precision: bool | None = None) -> Estimate:
    """Seconds and peak bytes of `fit(cfg, data, epochs=..., batch_size=..., recipe=...,
    channels_last=..., compile=...)` on `device`. `data` needs only `.train` and `.test`
    (their lengths) and `.image_size`."""
    from ..model import global_rng
    from . import engine

    epochs = whole_number("epochs", epochs, *EPOCHS_RANGE)
    batch_size = whole_number("batch_size", batch_size, *BATCH_RANGE)
    device = torch.device(device)
    chosen = recipe_for(recipe)
    load = machine_load() if device.type == "cpu" else None  # before our own steps add to it
    side = data.image_size
    report = complexity(cfg, side)
    measured = _measured_batch(report, batch_size, side, device)
    setup = engine._Setup(cfg, chosen, 1, measured, 0, device, bool(channels_last),
                          engine._autocast_dtype(device, mixed_precision), False)
    devices = [device.index or 0] if device.type == "cuda" else []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with global_rng(devices):
        timing = _Timing.of(setup, side, compile)
    scale = batch_size / measured
    steps = epochs * _steps_per_epoch(len(data.train), batch_size)
    step = (timing.compiled if timing.compiled is not None else timing.eager) * scale
    test_seconds = len(data.test) * TEST_IMAGE_SHARE * step / batch_size
    seconds = steps * step + epochs * test_seconds
    verdict = _verdict(timing, scale, steps, compile)
    if compile and verdict.failed is None:
        seconds += verdict.compile_seconds
    copies = 4 if chosen.optimizer == "adamw" else 3  # weights, gradients, optimizer state
    peak = copies * report.weight_bytes + batch_size * _image_bytes(report, side)
    if device.type == "cuda" and measured == batch_size:
        peak = max(peak, int(torch.cuda.max_memory_allocated(device)))
    return Estimate(seconds=seconds, peak_bytes=int(peak),
                    macs_per_second=TRAIN_MAC_FACTOR * report.macs * measured / (step / scale),
                    step_seconds=step / scale, measured_batch=measured, steps=steps,
                    load=load[0] if load else None, cores=load[1] if load else None,
                    compile=verdict)


def _image_bytes(report: Any, side: int) -> int:
    """Activations kept for backward, and the input, per training image."""
    return report.activation_bytes + 3 * side * side * FLOAT32_BYTES


def _measured_batch(report: Any, batch_size: int, side: int, device: torch.device) -> int:
    """The run's own batch; on a CPU a smaller one when its activations exceed
    MEASURE_BYTES (a GPU measures the real one: its peak memory is part of the answer)."""
    if device.type != "cpu":
        return batch_size
    fits = MEASURE_BYTES // max(1, _image_bytes(report, side))
    return max(BATCH_RANGE[0], min(batch_size, fits))


def _steps_per_epoch(images: int, batch_size: int) -> int:
    """As the engine counts them (`engine._new_plan`): a last batch of one image is dropped."""
    return max(1, images // batch_size + (1 if images % batch_size > 1 else 0))


def _verdict(timing: _Timing, scale: float, steps: int, compile: bool) -> CompileVerdict:
    eager = timing.eager * scale
    if compile and timing.failed is not None:
        return CompileVerdict(True, 0.0, 1.0, 0.0, steps, failed=timing.failed)
    if compile:
        compiled = timing.compiled * scale
        return CompileVerdict(True, timing.compile_seconds, eager / compiled,
                              steps * (eager - compiled), steps)
    compiled = eager / COMPILE_SPEEDUP_MODEL
    return CompileVerdict(False, COMPILE_SECONDS_MODEL, COMPILE_SPEEDUP_MODEL,
                          steps * (eager - compiled), steps)


@dataclass
class _Timing:
    """Seconds per training step of the engine's own step, eager and (if asked) compiled."""

    eager: float
    compiled: float | None = None
    compile_seconds: float = 0.0
    failed: str | None = None

    @classmethod
    def of(cls, setup: Any, side: int, compile: bool) -> _Timing:
        from . import engine

        data = _RandomImages(setup.batch_size, side, setup.cfg.num_classes)
        state = engine._new_state(setup, 1)
        plan = engine._new_plan(setup, data, 0, 1, False)
        reporter = engine._Reporter(0, 1, None, None, None)
        indices = torch.arange(setup.batch_size)

        def step() -> None:
            engine._step(plan, state, indices, reporter)

        timing = cls(_seconds_per_step(step, setup.device, WARMUP_STEPS))
        if compile:
            state.eager, state.trained = state.trained, engine._compiled(state.trained)
            with warnings.catch_warnings():  # a failure is the verdict's, not a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                first = _seconds_per_step(step, setup.device, 0, steps=1)  # compiles, steps
            if state.compile_error is not None:  # it fell back to eager
                timing.failed = state.compile_error
                return timing
            timing.compiled = _seconds_per_step(step, setup.device, WARMUP_STEPS - 1)
            timing.compile_seconds = max(0.0, first - timing.compiled)
        return timing


def _seconds_per_step(step: Any, device: torch.device, warmup: int, steps: int | None = None
                      ) -> float:
    """Mean seconds of `step()` after `warmup` untimed calls: `steps` of them, or at least
    MIN_STEPS and MIN_SECONDS' worth (at most MAX_STEPS)."""
    for _ in range(warmup):
        step()
    _synchronize(device)
    start, done = time.perf_counter(), 0
    while True:
        step()
        done += 1
        _synchronize(device)
        elapsed = time.perf_counter() - start
        if steps is not None and done >= steps:
            break
        if steps is None and ((done >= MIN_STEPS and elapsed >= MIN_SECONDS)
                              or done >= MAX_STEPS):
            break
    return elapsed / done


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _RandomImages:
    """Stands in for the data (a step's cost does not depend on the pixels): `batch`
    random uint8 images of the run's side, read through the same `ImageTensors.batch`."""

    def __init__(self, batch: int, side: int, classes: int) -> None:
        from ..data.tensors import ImageTensors

        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8,
                               generator=generator)
        self.train = ImageTensors(images, torch.arange(batch) % classes)
        self.test = self.train
        self.classes = tuple(str(i) for i in range(classes))
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
