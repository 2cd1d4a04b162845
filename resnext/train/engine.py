"""`fit`: train a ResNeXtConfig on a DatasetPair, optionally into a run folder.

Under `torchrun` (a process group already initialised) the model is wrapped in
DistributedDataParallel, each process takes its DistributedSampler shard of every epoch,
and rank 0 alone writes the run.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from ..config import ResNeXtConfig
from ..validation import SEED_RANGE, whole_number
from . import runs
from .limits import BATCH_RANGE, EPOCHS_RANGE, TEST_IMAGES_RANGE, TRAIN_IMAGES_RANGE
from .recipes import Recipe, augmentation, learning_rate, optimizer, recipe_for

# Step events go out at most this often (plus the first step of every epoch).
PROGRESS_INTERVAL_S = 0.5
EVAL_BATCH = 512


@dataclass
class FitResult:
    history: list[dict[str, Any]]  # one dict per finished epoch, keys runs.METRIC_KEYS
    run_dir: Path | None
    model: nn.Module  # weights of the last finished epoch
    stopped: bool = False
    config: dict[str, Any] = field(default_factory=dict)  # what config.json holds

    @property
    def test_accuracy(self) -> float | None:
        return self.history[-1]["test_accuracy"] if self.history else None


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _autocast_dtype(device: torch.device, mixed_precision: bool | None) -> torch.dtype | None:
    if device.type != "cuda" or mixed_precision is False:
        return None  # CPU: bf16 autocast is slower than float32 on most CPUs
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def evaluate(model: nn.Module, dataset: Any, mean: torch.Tensor, std: torch.Tensor,
             device: torch.device, channels_last: bool = False,
             autocast: torch.dtype | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on every item of `dataset`, in eval mode."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), EVAL_BATCH):
            indices = torch.arange(start, min(len(dataset), start + EVAL_BATCH))
            images, labels = _batch(dataset, indices, device, mean, std, channels_last)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                logits = model(images)
            loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            count += labels.numel()
    return loss_sum / max(1, count), correct / max(1, count)


def _batch(dataset: Any, indices: torch.Tensor, device: torch.device, mean: torch.Tensor,
           std: torch.Tensor, channels_last: bool, augment: nn.Module | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(dataset, "batch"):
        images, labels = dataset.batch(indices)
    else:  # any Dataset of (image, label)
        items = [dataset[int(i)] for i in indices]
        images = torch.stack([item[0] for item in items])
        labels = torch.tensor([int(item[1]) for item in items])
    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    if augment is not None:
        images = augment(images)
    images = (images - mean) / std
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels


def _check_data(cfg: ResNeXtConfig, data: Any) -> None:
    for name in ("train", "test", "classes", "mean", "std"):
        if not hasattr(data, name):
            raise TypeError(f"data must be a resnext.data DatasetPair (with .{name}); "
                            f"got {type(data).__name__}")
    if cfg.num_classes != len(data.classes):
        raise ValueError(f"the config has num_classes={cfg.num_classes} but the dataset has "
                         f"{len(data.classes)} classes; use cfg.replace(num_classes="
                         f"{len(data.classes)})")
    if len(data.train) < TRAIN_IMAGES_RANGE[0] or len(data.test) < TEST_IMAGES_RANGE[0]:
        raise ValueError(f"the dataset needs at least {TRAIN_IMAGES_RANGE[0]} training images "
                         f"(a batch BatchNorm can train on) and {TEST_IMAGES_RANGE[0]} test "
                         f"image; it has {len(data.train)} and {len(data.test)}")


def fit(cfg: ResNeXtConfig, data: Any, *, epochs: int, batch_size: int = 128,
        recipe: str | Recipe = "quick", lr: float | None = None, device: str | torch.device = "cpu",
        seed: int = 0, channels_last: bool = False, out_dir: str | os.PathLike[str] | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        mixed_precision: bool | None = None) -> FitResult:
    """Train `cfg` on `data` (a resnext.data DatasetPair) for `epochs` epochs.

    - `recipe`: "quick" (one-cycle, for short runs), "seed" (pytorch-cifar100's) or a
      `Recipe` of your own (e.g. `dataclasses.replace(RECIPES["quick"], flip=False)`);
      `lr` overrides its peak learning rate. `batch_size` is the global batch (split over the
      processes under torchrun).
    - `out_dir`: the run folder to write (created; one that already holds a run is refused).
    - `on_progress(event)`: dicts with kind "step" (at most every 0.5 s), "epoch" (with that
      epoch's metrics) and "done"; each has epoch, step, steps_total, loss, lr,
      images_per_second, eta_seconds.
    - `should_stop()`: checked every step; when true the partial epoch is dropped and the
      result (and the folder) keep the last whole epoch.
    - `mixed_precision`: None = bf16 (fp16 where bf16 is unsupported) autocast on CUDA, off
      on the CPU; True/False force it on CUDA.

    Same seed, device and thread count give the same history on the CPU, bit for bit (all
    but the timing keys `seconds` and `images_per_second`).
    """
    if not isinstance(cfg, ResNeXtConfig):
        raise TypeError(f"fit takes a ResNeXtConfig, got {type(cfg).__name__}")
    epochs = whole_number("epochs", epochs, *EPOCHS_RANGE)
    batch_size = whole_number("batch_size", batch_size, *BATCH_RANGE)
    seed = whole_number("seed", seed, *SEED_RANGE)
    chosen = recipe_for(recipe, lr)
    _check_data(cfg, data)
    device = torch.device(device)
    rank, world = _distributed()
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be divisible by the {world} processes")
    autocast = _autocast_dtype(device, mixed_precision)
    writer = _RunWriter(Path(out_dir), cfg, epochs, device) if (
        out_dir is not None and rank == 0) else None
    config = _run_config(cfg, data, chosen, epochs, batch_size, seed, device, channels_last,
                         autocast, world)
    if writer is not None:
        writer.start(config)
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            result = _train(cfg, data, chosen, epochs, batch_size // world, seed, device,
                            channels_last, autocast, rank, world, writer, on_progress,
                            should_stop)
    except BaseException as error:
        if writer is not None:
            writer.end("failed", f"{type(error).__name__}: {error}".strip(": "))
        raise
    result.config = config
    if writer is not None:
        writer.end("stopped" if result.stopped else "finished")
    return result


def _run_config(cfg: ResNeXtConfig, data: Any, recipe: Recipe, epochs: int, batch_size: int,
                seed: int, device: torch.device, channels_last: bool,
                autocast: torch.dtype | None, world: int) -> dict[str, Any]:
    describe = getattr(data, "describe", None)
    data_section = describe() if describe else {
        "name": getattr(data, "name", type(data).__name__),
        "sizes": {"train": len(data.train), "test": len(data.test)},
        "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std)}
    return {
        "model": cfg.to_dict(), "data": data_section,
        "recipe": {**recipe.to_dict(), "batch_size": batch_size}, "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "channels_last": channels_last,
        "mixed_precision": None if autocast is None else str(autocast).replace("torch.", ""),
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "device": str(device), "threads": torch.get_num_threads(),
                        "processes": world},
    }


class _RunWriter:
    def __init__(self, run_dir: Path, cfg: ResNeXtConfig, epochs: int, device: torch.device
                 ) -> None:
        self.run_dir = runs.prepare_folder(run_dir)
        self.cfg, self.epochs, self.device = cfg, epochs, str(device)
        self.started_at = runs.timestamp()
        self.last_progress = 0.0

    def start(self, config: dict[str, Any]) -> None:
        runs.write_config(self.run_dir, config)
        self._status("running")

    def _status(self, state: str, error: str | None = None, ended: bool = False) -> None:
        runs.write_status(self.run_dir, runs.status_record(
            state, self.started_at, self.epochs, self.device, error, ended))

    def progress(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["kind"] == "step" and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        runs.write_progress(self.run_dir, event)

    def epoch(self, model: nn.Module, history: list[dict[str, Any]]) -> None:
        # Weights first, then their metrics line: load_run matches them by epoch.
        runs.save_model(self.run_dir, model, self.cfg, history[-1]["epoch"])
        runs.write_metrics(self.run_dir, history)

    def end(self, state: str, error: str | None = None) -> None:
        try:
            self._status(state, error, ended=True)
        except OSError:
            pass  # the folder went away: nothing left to report into


@dataclass(frozen=True, eq=False)
class _Plan:
    """What a run does, fixed from its first step to its last."""

    recipe: Recipe
    data: Any
    epochs: int
    local_batch: int  # this process's share of the global batch
    device: torch.device
    channels_last: bool
    autocast: torch.dtype | None
    rank: int
    world: int
    mean: torch.Tensor  # (1, 3, 1, 1) on the device
    std: torch.Tensor
    augment: nn.Module
    sampler: DistributedSampler  # this process's shard of each epoch, shuffled by the seed
    steps_per_epoch: int

    @property
    def steps_total(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass(eq=False)
class TrainingState:
    """Everything that changes as a run trains, in one object: the model (and the wrapper
    that trains it under torchrun), the optimiser, its gradient scaler, the counters and
    the finished epochs. What resume must save and restore is this plus the global RNG
    (seeded once per run; kornia's augmentation draws from it)."""

    model: nn.Module
    trained: nn.Module | None  # the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # float16 autocast only
    epoch: int = 0  # epochs finished
    global_step: int = 0  # steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch
    finished_weights: dict[str, torch.Tensor] | None = None  # of the last finished epoch
    stopped: bool = False


def _new_state(cfg: ResNeXtConfig, recipe: Recipe, seed: int, device: torch.device,
               channels_last: bool, autocast: torch.dtype | None, world: int
               ) -> TrainingState:
    from ..model import build_model

    model = build_model(cfg, generator=torch.Generator().manual_seed(seed),
                        init=recipe.init).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda") if autocast == torch.float16 else None
    return TrainingState(model, trained, optimizer(recipe, model), scaler)


def _new_plan(data: Any, recipe: Recipe, epochs: int, local_batch: int, seed: int,
              device: torch.device, channels_last: bool, autocast: torch.dtype | None,
              rank: int, world: int) -> _Plan:
    augment = augmentation(recipe, data.train[0][0].shape[-1]).to(device)
    mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    sampler = DistributedSampler(range(len(data.train)), num_replicas=world, rank=rank,
                                 shuffle=True, seed=seed)
    shard = len(sampler)
    # A last batch of one image is dropped: BatchNorm cannot train on it (limits.BATCH_RANGE).
    steps_per_epoch = max(1, shard // local_batch + (1 if shard % local_batch > 1 else 0))
    return _Plan(recipe, data, epochs, local_batch, device, channels_last, autocast, rank,
                 world, mean, std, augment, sampler, steps_per_epoch)


class _Clock:
    """The run's timing, in one place: when a step event is due, images per second, and
    the time left (the mean time per step so far times the steps left)."""

    def __init__(self) -> None:
        self.run_start = time.perf_counter()
        self.epoch_start = self.run_start
        self.last_event = -math.inf

    def start_epoch(self) -> None:
        self.epoch_start = time.perf_counter()
        self.last_event = -math.inf

    def step_due(self, step: int, steps: int) -> float | None:
        """The time now if step `step` (0-based) of `steps` should report, else None: at
        most every PROGRESS_INTERVAL_S, and always an epoch's first and last step."""
        now = time.perf_counter()
        if now - self.last_event >= PROGRESS_INTERVAL_S or step in (0, steps - 1):
            self.last_event = now
            return now
        return None

    def eta(self, done: int, total: int, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        return (now - self.run_start) / done * (total - done)

    def images_per_second(self, images: int, now: float) -> float | None:
        elapsed = now - self.epoch_start
        return images / elapsed if elapsed > 0 else None


def _event(kind: str, plan: _Plan, epoch: int, step: int, global_step: int,
           loss: float | None, lr: float | None, images_per_second: float | None,
           eta_seconds: float, **extra: Any) -> dict[str, Any]:
    """A progress event (see `fit`): every kind has these keys, in this order."""
    return {"kind": kind, "epoch": epoch, "epochs": plan.epochs, "step": step,
            "steps": plan.steps_per_epoch, "steps_total": plan.steps_total,
            "global_step": global_step, "loss": loss, "lr": lr,
            "images_per_second": images_per_second, "eta_seconds": eta_seconds, **extra}


def _row_event(kind: str, plan: _Plan, row: dict[str, Any] | None, step: int,
               global_step: int, eta_seconds: float, **extra: Any) -> dict[str, Any]:
    """An event that reports a finished epoch's metrics row (or none yet)."""
    return _event(kind, plan, row["epoch"] if row else 0, step, global_step,
                  row["train_loss"] if row else None, row["lr"] if row else None,
                  row["images_per_second"] if row else None, eta_seconds,
                  **extra, metrics=dict(row) if row else None)


class _Reporter:
    """Where events go: rank 0's run folder and callback; the other processes say nothing.
    Also asks `should_stop`, agreed by every process."""

    def __init__(self, rank: int, world: int, writer: _RunWriter | None,
                 on_progress: Callable[[dict[str, Any]], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:
        self.rank, self.world, self.writer = rank, world, writer
        self.on_progress, self.should_stop = on_progress, should_stop

    def emit(self, event: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        if self.writer is not None:
            self.writer.progress(event)
        if self.on_progress is not None:
            self.on_progress(event)

    def stop_requested(self) -> bool:
        wanted = bool(self.should_stop()) if self.should_stop is not None else False
        if self.world > 1:  # every process stops at the same step, or a collective would hang
            flag = torch.tensor([1 if wanted else 0])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            wanted = bool(flag.item())
        return wanted


def _train(cfg: ResNeXtConfig, data: Any, recipe: Recipe, epochs: int, local_batch: int,
           seed: int, device: torch.device, channels_last: bool, autocast: torch.dtype | None,
           rank: int, world: int, writer: _RunWriter | None,
           on_progress: Callable[[dict[str, Any]], None] | None,
           should_stop: Callable[[], bool] | None) -> FitResult:
    torch.manual_seed(seed * 7919 + rank)  # kornia's augmentation draws from the global RNG
    state = _new_state(cfg, recipe, seed, device, channels_last, autocast, world)
    plan = _new_plan(data, recipe, epochs, local_batch, seed, device, channels_last, autocast,
                     rank, world)
    reporter = _Reporter(rank, world, writer, on_progress, should_stop)
    clock = _Clock()
    while state.epoch < plan.epochs:
        totals = _train_epoch(plan, state, clock, reporter)
        if totals is None:
            break
        _finish_epoch(plan, state, clock, reporter, *totals)
    if state.stopped and state.finished_weights is not None:
        state.model.load_state_dict(state.finished_weights)  # drop the partial epoch
    state.trained = None  # the DDP wrapper must go before the process group is destroyed
    state.model.eval()
    history = state.history
    reporter.emit(_row_event("done", plan, history[-1] if history else None, 0,
                             len(history) * plan.steps_per_epoch, 0.0, stopped=state.stopped))
    return FitResult(history=history, run_dir=writer.run_dir if writer else None,
                     model=state.model, stopped=state.stopped)


def _train_epoch(plan: _Plan, state: TrainingState, clock: _Clock, reporter: _Reporter
                 ) -> tuple[torch.Tensor, float] | None:
    """One epoch's steps; (loss sum, correct, images) and the seconds they took, or None
    when a stop was asked for (the partial epoch is then dropped)."""
    plan.sampler.set_epoch(state.epoch)
    order = torch.tensor(list(plan.sampler), dtype=torch.int64)
    state.trained.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=plan.device)
    correct = torch.zeros((), dtype=torch.int64, device=plan.device)
    seen = 0
    clock.start_epoch()
    for step in range(plan.steps_per_epoch):
        if reporter.stop_requested():
            state.stopped = True
            return None
        indices = order[step * plan.local_batch:(step + 1) * plan.local_batch]
        loss, logits, labels, rate = _step(plan, state, indices)
        with torch.no_grad():
            loss_sum += loss.detach().double() * labels.numel()
            correct += (logits.argmax(1) == labels).sum()
        seen += labels.numel()
        now = clock.step_due(step, plan.steps_per_epoch) if plan.rank == 0 else None
        if now is not None:
            done = state.global_step
            reporter.emit(_event(
                "step", plan, state.epoch + 1, step + 1, done, float(loss.detach()), rate,
                clock.images_per_second(seen * plan.world, now),
                clock.eta(done, plan.steps_total, now)))
    seconds = time.perf_counter() - clock.epoch_start
    totals = torch.stack([loss_sum.cpu(), correct.cpu().double(),
                          torch.tensor(float(seen), dtype=torch.float64)])
    return totals, seconds


def _step(plan: _Plan, state: TrainingState, indices: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One optimiser step on the batch `indices`: (loss, logits, labels, learning rate)."""
    images, labels = _batch(plan.data.train, indices, plan.device, plan.mean, plan.std,
                            plan.channels_last, plan.augment)
    rate = learning_rate(plan.recipe, state.global_step, plan.steps_per_epoch, plan.epochs)
    for group in state.optimizer.param_groups:
        group["lr"] = rate
    with torch.autocast(plan.device.type, dtype=plan.autocast,
                        enabled=plan.autocast is not None):
        logits = state.trained(images)
        loss = F.cross_entropy(logits.float(), labels)
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        state.optimizer.step()
    state.global_step += 1
    return loss, logits, labels, rate


def _finish_epoch(plan: _Plan, state: TrainingState, clock: _Clock, reporter: _Reporter,
                  totals: torch.Tensor, train_seconds: float) -> None:
    """Agree the epoch's totals across processes, test, record the row and the weights."""
    if plan.world > 1:
        torch.distributed.all_reduce(totals)
        # BN statistics are each process's own; make every copy rank 0's, so the saved
        # model is the one every process holds.
        for buffer in state.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    if plan.rank == 0:
        test_loss, test_accuracy = evaluate(state.model, plan.data.test, plan.mean, plan.std,
                                            plan.device, plan.channels_last, plan.autocast)
    else:  # only rank 0 reports and writes; the others need not spend the time
        test_loss, test_accuracy = math.nan, math.nan
    state.epoch += 1
    row = {"epoch": state.epoch,
           "train_loss": float(totals[0] / totals[2]),
           "train_accuracy": float(totals[1] / totals[2]),
           "test_loss": test_loss, "test_accuracy": test_accuracy,
           "lr": learning_rate(plan.recipe, state.epoch * plan.steps_per_epoch - 1,
                               plan.steps_per_epoch, plan.epochs),
           "seconds": time.perf_counter() - clock.epoch_start,
           "images_per_second": float(totals[2]) / train_seconds if train_seconds else None}
    state.history.append(row)
    state.finished_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
    if reporter.writer is not None:
        reporter.writer.epoch(state.model, state.history)
    done = state.epoch * plan.steps_per_epoch
    reporter.emit(_row_event("epoch", plan, row, plan.steps_per_epoch, done,
                             clock.eta(done, plan.steps_total)))


def describe_error(error: BaseException) -> str:
    """One line for status.json and the CLI: the exception, not its traceback."""
    return "".join(traceback.format_exception_only(type(error), error)).strip()
