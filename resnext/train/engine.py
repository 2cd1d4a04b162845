"""`fit`: train a ResNeXtConfig on a DatasetPair, optionally into a run folder; `resume`:
continue a run folder from its last finished epoch.

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
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from ..config import ResNeXtConfig
from ..model import global_rng
from ..validation import SEED_RANGE, whole_number
from . import board, resume_state, runs
from .clock import Clock
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
        mixed_precision: bool | None = None, compile: bool = False,
        tensorboard: bool = False) -> FitResult:
    """Train `cfg` on `data` (a resnext.data DatasetPair) for `epochs` epochs.

    - `recipe`: "quick" (one-cycle, for short runs), "seed" (pytorch-cifar100's) or a
      `Recipe` of your own (e.g. `dataclasses.replace(RECIPES["quick"], flip=False)`);
      `lr` overrides its peak learning rate. `batch_size` is the global batch (split over the
      processes under torchrun).
    - `out_dir`: the run folder to write (created; one that already holds a run is refused).
      Every finished epoch saves the weights and what `resume` needs to continue.
    - `on_progress(event)`: dicts with kind "step" (at most every 0.5 s), "epoch" (with that
      epoch's metrics) and "done"; each has epoch, step, steps_total, loss, lr,
      images_per_second (the recent rate, `clock`) and eta_seconds (the time left at it).
    - `should_stop()`: checked every step; when true the partial epoch is dropped and the
      result (and the folder) keep the last whole epoch.
    - `mixed_precision`: None = bf16 (fp16 where bf16 is unsupported) autocast on CUDA, off
      on the CPU; True/False force it on CUDA.
    - `compile`: train through `torch.compile` (eager if compiling fails: status.json's
      "note" says so); `estimate(..., compile=True)` says whether it pays.
    - `tensorboard`: also write the scalars as TensorBoard event files (`board`; needs the
      tensorboard package and `out_dir`).

    Same seed, device and thread count give the same history on the CPU, bit for bit (all
    but the timing keys `seconds` and `images_per_second`).
    """
    if not isinstance(cfg, ResNeXtConfig):
        raise TypeError(f"fit takes a ResNeXtConfig, got {type(cfg).__name__}")
    setup = _Setup(cfg, recipe_for(recipe, lr), whole_number("epochs", epochs, *EPOCHS_RANGE),
                   whole_number("batch_size", batch_size, *BATCH_RANGE),
                   whole_number("seed", seed, *SEED_RANGE), torch.device(device),
                   bool(channels_last), _autocast_dtype(torch.device(device), mixed_precision),
                   bool(compile))
    _check_data(cfg, data)
    rank, world = _distributed()
    if setup.batch_size % world:
        raise ValueError(f"batch_size {setup.batch_size} must be divisible by the {world} "
                         f"processes")
    if tensorboard:
        board.check_available()
    config = _run_config(setup, data, world, bool(tensorboard))
    writer = None
    if out_dir is not None and rank == 0:
        writer = _RunWriter(runs.prepare_folder(Path(out_dir)), setup, runs.timestamp(), [])
        writer.start(config, board.Board(writer.run_dir) if tensorboard else None)
    return _run(setup, data, config, writer, out_dir is not None, on_progress, should_stop)


def resume(run_dir: str | os.PathLike[str], data: Any = None, *,
           device: str | torch.device | None = None,
           on_progress: Callable[[dict[str, Any]], None] | None = None,
           should_stop: Callable[[], bool] | None = None) -> FitResult:
    """Continue a stopped, interrupted or failed run to its planned epochs, from its last
    finished epoch: its weights, optimizer and schedule state and every RNG state the next
    epoch draws from (`resume_state`), appending to its metrics.jsonl. On the CPU, with
    the same thread count, the result is the run left alone, bit for bit.

    `data`: the run's dataset (None: rebuilt from its config.json's spec); `device`: None
    trains where it trained. Under torchrun, with as many processes as before. A run that
    cannot be resumed (finished, running, no resume state) is a `runs.RunError` saying why.
    """
    folder = Path(run_dir)
    rank, world = _distributed()
    config, setup, data, tensors, state = _agreed(
        world, lambda: _read_resumable(folder, data, device, world))
    writer = None
    if rank == 0:
        status = runs.read_status(folder)
        resumed = [*status.get("resumed", []), {"at_epoch": state["epoch"],
                                                "at": runs.timestamp()}]
        writer = _RunWriter(folder, setup, status.get("started_at") or runs.timestamp(),
                            resumed)
        writer.start(None, board.Board(folder, purge_step=state["global_step"])
                     if config.get("tensorboard") else None)
    saved = _Saved(resume_state.weights(tensors), tensors, state)
    return _run(setup, data, config, writer, True, on_progress, should_stop, saved)


def _read_resumable(folder: Path, data: Any, device: str | torch.device | None,
                    world: int) -> tuple[dict[str, Any], _Setup, Any, dict[str, torch.Tensor],
                                         dict[str, Any]]:
    """What `resume` continues from, checked: (config, setup, data, resume tensors and JSON)."""
    runs.check_resumable(folder)
    config = runs.read_config(folder) or {}
    setup = _setup_from_config(config, device)
    data = _resume_data(config, data)
    _check_data(setup.cfg, data)
    tensors, state = runs.read_resume(folder)
    if state["processes"] != world:
        # Each process's shard and RNG stream belong to its rank in a world of that size.
        raise ValueError(f"{folder.name} was trained by {state['processes']} process(es); "
                         f"resume it with as many (torchrun --nproc_per_node="
                         f"{state['processes']}), not {world}")
    if config.get("tensorboard"):
        board.check_available()
    return config, setup, data, tensors, state


def _agreed(world: int, read: Callable[[], Any]) -> Any:
    """`read()` in every process, then one collective (under torchrun) before anything is
    written: every process has read the run folder before rank 0 marks it running (a process
    that read it later would find a running run and refuse), and if one process cannot go
    on, none does (one that raised alone would leave the others waiting in a collective)."""
    try:
        result, failure = read(), None
    except Exception as error:  # noqa: BLE001 - raised again below, after the others know
        result, failure = None, error
    reasons: list[str | None] = [None] * world
    if world > 1:
        torch.distributed.all_gather_object(
            reasons, None if failure is None else describe_error(failure))
    if failure is not None:
        raise failure
    for process, reason in enumerate(reasons):
        if reason is not None:
            raise runs.RunError(f"process {process} cannot resume the run: {reason}")
    return result


@dataclass(frozen=True, eq=False)
class _Saved:
    """A run folder's last finished epoch, as resume reads it."""

    weights: dict[str, torch.Tensor]  # the model's, from resume.safetensors
    tensors: dict[str, torch.Tensor]  # resume.safetensors
    state: dict[str, Any]  # resume.json


@dataclass(frozen=True)
class _Setup:
    """A run's settings: what `fit` was asked, or what `resume` reads from config.json."""

    cfg: ResNeXtConfig
    recipe: Recipe
    epochs: int
    batch_size: int  # global: split over the processes
    seed: int
    device: torch.device
    channels_last: bool
    autocast: torch.dtype | None
    compile: bool


def _setup_from_config(config: dict[str, Any], device: str | torch.device | None) -> _Setup:
    try:
        recipe = {key: value for key, value in config["recipe"].items() if key != "batch_size"}
        recipe["milestones"] = tuple(recipe["milestones"])
        chosen = torch.device(device if device is not None
                              else config["environment"]["device"])
        precision = config.get("mixed_precision")
        return _Setup(ResNeXtConfig.from_dict(config["model"]), Recipe(**recipe),
                      int(config["epochs"]), int(config["batch_size"]), int(config["seed"]),
                      chosen, bool(config.get("channels_last")),
                      getattr(torch, precision) if precision and chosen.type == "cuda" else None,
                      bool(config.get("compile")))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise runs.RunError(f"the run's {runs.CONFIG_FILE} cannot be resumed from "
                            f"({type(error).__name__}: {error})") from None


def _resume_data(config: dict[str, Any], data: Any) -> Any:
    """The run's dataset: `data` if it is the one config.json describes, else rebuilt."""
    spec = config.get("data") or {}
    if data is None:
        from ..data import registry

        return registry.load(spec)
    described = data.describe() if hasattr(data, "describe") else {}
    for key in ("name", "sizes", "classes", "mean", "std"):
        if key in spec and described.get(key) != spec[key]:
            raise ValueError(f"data is not the run's dataset: its {key} is "
                             f"{described.get(key)!r}, the run's {spec[key]!r}")
    return data


def _run(setup: _Setup, data: Any, config: dict[str, Any], writer: _RunWriter | None,
         saving: bool, on_progress: Callable[[dict[str, Any]], None] | None,
         should_stop: Callable[[], bool] | None,
         resumed: _Saved | None = None) -> FitResult:
    """Train in a forked RNG, recording the end (finished, stopped or failed) in the folder."""
    rank, world = _distributed()
    devices = [setup.device.index or 0] if setup.device.type == "cuda" else []
    reporter = _Reporter(rank, world, writer, on_progress, should_stop)
    try:
        with global_rng(devices):
            result = _train(setup, data, rank, world, saving, reporter, resumed)
    except BaseException as error:
        if writer is not None:
            writer.end("failed", f"{type(error).__name__}: {error}".strip(": "))
        raise
    result.config = config
    if writer is not None:
        writer.end("stopped" if result.stopped else "finished")
    return result


def _run_config(setup: _Setup, data: Any, world: int, tensorboard: bool) -> dict[str, Any]:
    describe = getattr(data, "describe", None)
    data_section = describe() if describe else {
        "name": getattr(data, "name", type(data).__name__),
        "sizes": {"train": len(data.train), "test": len(data.test)},
        "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std)}
    autocast = setup.autocast
    return {
        "model": setup.cfg.to_dict(), "data": data_section,
        "recipe": {**setup.recipe.to_dict(), "batch_size": setup.batch_size},
        "epochs": setup.epochs, "batch_size": setup.batch_size, "seed": setup.seed,
        "channels_last": setup.channels_last,
        "mixed_precision": None if autocast is None else str(autocast).replace("torch.", ""),
        "compile": setup.compile, "tensorboard": tensorboard,
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "device": str(setup.device), "threads": torch.get_num_threads(),
                        "processes": world},
    }


class _RunWriter:
    """Rank 0's run folder: config and status, progress, and at each finished epoch the
    weights, the resume state and the metrics (and the TensorBoard scalars)."""

    def __init__(self, run_dir: Path, setup: _Setup, started_at: str,
                 resumed: list[dict[str, Any]]) -> None:
        self.run_dir, self.setup = run_dir, setup
        self.started_at, self.resumed = started_at, resumed
        self.note: str | None = None
        self.board: board.Board | None = None
        self.last_progress = 0.0

    def start(self, config: dict[str, Any] | None, events: board.Board | None) -> None:
        """A new run writes its config; a resumed one keeps it."""
        if config is not None:
            runs.write_config(self.run_dir, config)
        self.board = events
        self._status("running")

    def _status(self, state: str, error: str | None = None, ended: bool = False) -> None:
        runs.write_status(self.run_dir, runs.status_record(
            state, self.started_at, self.setup.epochs, str(self.setup.device), error, ended,
            resumed=self.resumed, note=self.note))

    def set_note(self, note: str) -> None:
        self.note = note
        self._status("running")

    def progress(self, event: dict[str, Any]) -> None:
        if event["kind"] == "step" and self.board is not None:
            self.board.step(event)
        now = time.monotonic()
        if event["kind"] == "step" and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        runs.write_progress(self.run_dir, event)

    def epoch(self, model: nn.Module, history: list[dict[str, Any]],
              resume: tuple[dict[str, torch.Tensor], dict[str, Any]] | None) -> None:
        # Weights, then what resume needs of the same epoch (its JSON last: it says the epoch
        # is complete), then the metrics line: load_run matches weights and line by epoch.
        runs.save_model(self.run_dir, model, self.setup.cfg, history[-1]["epoch"])
        if resume is not None:
            runs.write_resume(self.run_dir, *resume)
        runs.write_metrics(self.run_dir, history)
        if self.board is not None:
            self.board.epoch(history[-1])

    def end(self, state: str, error: str | None = None) -> None:
        try:
            if state == "finished":
                runs.remove_resume(self.run_dir)
            self._status(state, error, ended=True)
        except OSError:
            pass  # the folder went away: nothing left to report into
        if self.board is not None:
            self.board.close()


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
    saving: bool = False  # each finished epoch is saved (with its resume state)

    @property
    def steps_total(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass(eq=False)
class TrainingState:
    """Everything that changes as a run trains, in one object: the model (and the wrapper
    that trains it: DistributedDataParallel under torchrun, torch.compile's when asked),
    the optimiser, its gradient scaler, the counters and the finished epochs. What resume
    saves and restores is this plus every RNG state (`resume_state`)."""

    model: nn.Module
    trained: nn.Module | None  # what the steps call: the model, or its DDP/compiled wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # float16 autocast only
    epoch: int = 0  # epochs finished
    global_step: int = 0  # steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per finished epoch
    finished_weights: dict[str, torch.Tensor] | None = None  # of the last finished epoch
    stopped: bool = False
    eager: nn.Module | None = None  # the uncompiled `trained`, while compiling is untried
    note: str | None = None  # what the run tells its status (compiling fell back to eager)
    compile_error: str | None = None  # why compiling failed, when it did


def _new_state(setup: _Setup, world: int) -> TrainingState:
    from ..model import build_model

    model = build_model(setup.cfg, generator=torch.Generator().manual_seed(setup.seed),
                        init=setup.recipe.init).to(setup.device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[setup.device.index] if setup.device.type == "cuda" else None)
    scaler = torch.amp.GradScaler("cuda") if setup.autocast == torch.float16 else None
    state = TrainingState(model, trained, optimizer(setup.recipe, model), scaler)
    if setup.compile:
        state.eager, state.trained = trained, _compiled(trained)
    return state


def _compiled(module: nn.Module) -> nn.Module:
    """`torch.compile(module)`; compiling happens at its first call (`_first_compiled_step`)."""
    return torch.compile(module)


def _new_plan(setup: _Setup, data: Any, rank: int, world: int, saving: bool) -> _Plan:
    device = setup.device
    augment = augmentation(setup.recipe, data.train[0][0].shape[-1]).to(device)
    mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    sampler = DistributedSampler(range(len(data.train)), num_replicas=world, rank=rank,
                                 shuffle=True, seed=setup.seed)
    shard = len(sampler)
    local_batch = setup.batch_size // world
    # A last batch of one image is dropped: BatchNorm cannot train on it (limits.BATCH_RANGE).
    steps_per_epoch = max(1, shard // local_batch + (1 if shard % local_batch > 1 else 0))
    return _Plan(setup.recipe, data, setup.epochs, local_batch, device, setup.channels_last,
                 setup.autocast, rank, world, mean, std, augment, sampler, steps_per_epoch,
                 saving)


def _event(kind: str, plan: _Plan, epoch: int, step: int, global_step: int,
           loss: float | None, lr: float | None, images_per_second: float | None,
           eta_seconds: float | None, **extra: Any) -> dict[str, Any]:
    """A progress event (see `fit`): every kind has these keys, in this order."""
    return {"kind": kind, "epoch": epoch, "epochs": plan.epochs, "step": step,
            "steps": plan.steps_per_epoch, "steps_total": plan.steps_total,
            "global_step": global_step, "loss": loss, "lr": lr,
            "images_per_second": images_per_second, "eta_seconds": eta_seconds, **extra}


def _row_event(kind: str, plan: _Plan, row: dict[str, Any] | None, step: int,
               global_step: int, eta_seconds: float | None, rate: float | None,
               **extra: Any) -> dict[str, Any]:
    """An event that reports a finished epoch's metrics row (or none yet), with the
    clock's recent rate and the time left at it."""
    return _event(kind, plan, row["epoch"] if row else 0, step, global_step,
                  row["train_loss"] if row else None, row["lr"] if row else None,
                  rate, eta_seconds, **extra, metrics=dict(row) if row else None)


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

    def note(self, text: str) -> None:
        """Something the run's status should say (and its log: a warning on stderr)."""
        if self.rank != 0:
            return
        warnings.warn(text, RuntimeWarning, stacklevel=2)
        if self.writer is not None:
            self.writer.set_note(text)

    def stop_requested(self) -> bool:
        wanted = bool(self.should_stop()) if self.should_stop is not None else False
        if self.world > 1:  # every process stops at the same step, or a collective would hang
            flag = torch.tensor([1 if wanted else 0])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            wanted = bool(flag.item())
        return wanted


def _train(setup: _Setup, data: Any, rank: int, world: int, saving: bool,
           reporter: _Reporter, resumed: _Saved | None) -> FitResult:
    torch.manual_seed(setup.seed * 7919 + rank)  # kornia's augmentation draws from the global RNG
    state = _new_state(setup, world)
    plan = _new_plan(setup, data, rank, world, saving)
    if resumed is not None:
        _restore(plan, state, resumed)
    clock = Clock(len(plan.sampler) * world, len(data.test), plan.steps_per_epoch,
                  PROGRESS_INTERVAL_S)
    while state.epoch < plan.epochs:
        totals = _train_epoch(plan, state, clock, reporter)
        if totals is None:
            break
        _finish_epoch(plan, state, clock, reporter, *totals)
    if state.stopped and state.finished_weights is not None:
        state.model.load_state_dict(state.finished_weights)  # drop the partial epoch
    state.trained = state.eager = None  # the DDP wrapper must go before the process group
    state.model.eval()
    history = state.history
    reporter.emit(_row_event("done", plan, history[-1] if history else None, 0,
                             len(history) * plan.steps_per_epoch, 0.0, clock.rate(),
                             stopped=state.stopped))
    return FitResult(history=history, run_dir=reporter.writer.run_dir if reporter.writer
                     else None, model=state.model, stopped=state.stopped)


def _restore(plan: _Plan, state: TrainingState, saved: _Saved) -> None:
    """Continue from the saved epoch: its weights, optimizer, scaler, counters, rows, RNG."""
    epoch, step = saved.state["epoch"], saved.state["global_step"]
    if step != epoch * plan.steps_per_epoch:
        raise runs.RunError(f"the run took {step} steps in {epoch} epochs, but its data and "
                            f"batch now make {plan.steps_per_epoch} steps an epoch: not the "
                            f"run's data")
    resume_state.restore(state.model, saved.weights, state.optimizer, state.scaler,
                         saved.tensors, saved.state, plan.device, plan.rank)
    state.epoch, state.global_step = epoch, step
    state.history = [dict(row) for row in saved.state["history"]]
    state.finished_weights = {k: v.detach().clone() for k, v in state.model.state_dict().items()}


def _train_epoch(plan: _Plan, state: TrainingState, clock: Clock, reporter: _Reporter
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
        loss, logits, labels, rate = _step(plan, state, indices, reporter)
        with torch.no_grad():
            loss_sum += loss.detach().double() * labels.numel()
            correct += (logits.argmax(1) == labels).sum()
        seen += labels.numel()
        if plan.rank == 0:
            clock.step_done(labels.numel() * plan.world)
            if clock.step_due(step, plan.steps_per_epoch):
                reporter.emit(_event(
                    "step", plan, state.epoch + 1, step + 1, state.global_step,
                    float(loss.detach()), rate, clock.rate(),
                    clock.time_left(plan.steps_total - state.global_step,
                                    plan.epochs - state.epoch)))
    seconds = time.perf_counter() - clock.epoch_start
    totals = torch.stack([loss_sum.cpu(), correct.cpu().double(),
                          torch.tensor(float(seen), dtype=torch.float64)])
    return totals, seconds


def _step(plan: _Plan, state: TrainingState, indices: torch.Tensor, reporter: _Reporter
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One optimiser step on the batch `indices`: (loss, logits, labels, learning rate)."""
    images, labels = _batch(plan.data.train, indices, plan.device, plan.mean, plan.std,
                            plan.channels_last, plan.augment)
    rate = learning_rate(plan.recipe, state.global_step, plan.steps_per_epoch, plan.epochs)
    for group in state.optimizer.param_groups:
        group["lr"] = rate
    if state.eager is not None:
        loss, logits = _first_compiled_step(plan, state, images, labels, reporter)
    else:
        loss, logits = _forward_backward(plan, state, images, labels)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    state.global_step += 1
    return loss, logits, labels, rate


def _forward_backward(plan: _Plan, state: TrainingState, images: torch.Tensor,
                      labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.autocast(plan.device.type, dtype=plan.autocast,
                        enabled=plan.autocast is not None):
        logits = state.trained(images)
        loss = F.cross_entropy(logits.float(), labels)
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
    else:
        loss.backward()
    return loss, logits


def _first_compiled_step(plan: _Plan, state: TrainingState, images: torch.Tensor,
                         labels: torch.Tensor, reporter: _Reporter
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The compiled module's first call compiles it. If that fails (no C compiler, an
    unsupported operator), the run goes on eagerly from the same batch, and says so: a run
    never fails for asking to be compiled."""
    buffers = [buffer.detach().clone() for buffer in state.model.buffers()]
    try:
        result = _forward_backward(plan, state, images, labels)
    except Exception as error:  # noqa: BLE001 - torch.compile raises many types
        with torch.no_grad():  # a half-run forward may have moved BatchNorm's statistics
            for buffer, kept in zip(state.model.buffers(), buffers):
                buffer.copy_(kept)
        state.trained = state.eager
        state.compile_error = describe_error(error).splitlines()[0][:300]
        state.note = f"torch.compile failed ({state.compile_error}); trained without compiling"
        reporter.note(state.note)
        result = _forward_backward(plan, state, images, labels)
    state.eager = None
    return result


def _finish_epoch(plan: _Plan, state: TrainingState, clock: Clock, reporter: _Reporter,
                  totals: torch.Tensor, train_seconds: float) -> None:
    """Agree the epoch's totals across processes, test, record the row and the weights."""
    if plan.world > 1:
        torch.distributed.all_reduce(totals)
        # BN statistics are each process's own; make every copy rank 0's, so the saved
        # model is the one every process holds.
        for buffer in state.model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    tested = time.perf_counter()
    if plan.rank == 0:
        test_loss, test_accuracy = evaluate(state.model, plan.data.test, plan.mean, plan.std,
                                            plan.device, plan.channels_last, plan.autocast)
    else:  # only rank 0 reports and writes; the others need not spend the time
        test_loss, test_accuracy = math.nan, math.nan
    clock.test_done(time.perf_counter() - tested)
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
    _save_epoch(plan, state, reporter)
    done = state.epoch * plan.steps_per_epoch
    reporter.emit(_row_event("epoch", plan, row, plan.steps_per_epoch, done,
                             clock.time_left(plan.steps_total - done, plan.epochs - state.epoch),
                             clock.rate()))


def _save_epoch(plan: _Plan, state: TrainingState, reporter: _Reporter) -> None:
    """The epoch's weights, resume state and metrics into the run folder (rank 0). Every
    process takes part: its RNG state is part of what resume needs."""
    if not plan.saving:
        return
    rng = resume_state.gather_rng(plan.device, plan.rank, plan.world)
    if reporter.writer is None:
        return
    resume = resume_state.capture(state.model, state.optimizer, state.scaler, rng, state.epoch,
                                  state.global_step, plan.world, state.history)
    reporter.writer.epoch(state.model, state.history, resume)


def describe_error(error: BaseException) -> str:
    """One line for status.json and the CLI: the exception, not its traceback."""
    return "".join(traceback.format_exception_only(type(error), error)).strip()
