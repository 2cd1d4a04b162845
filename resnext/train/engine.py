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
from ..validation import whole_number
from . import runs
from .recipes import Recipe, augmentation, learning_rate, optimizer, recipe_for

EPOCHS_RANGE = (1, 10_000)
BATCH_RANGE = (1, 65_536)
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
    if len(data.train) == 0 or len(data.test) == 0:
        raise ValueError("the dataset needs at least one training and one test image")


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
    seed = whole_number("seed", seed, 0, 2**31 - 1)
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
        runs.write_json(self.run_dir / runs.CONFIG_FILE, config)
        self._status("running")

    def _status(self, state: str, error: str | None = None, ended: bool = False) -> None:
        runs.write_json(self.run_dir / runs.STATUS_FILE, dict(runs.status_record(
            state, self.started_at, self.epochs, self.device, error, ended)))

    def progress(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["kind"] == "step" and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        runs.write_json(self.run_dir / runs.PROGRESS_FILE, event)

    def epoch(self, model: nn.Module, history: list[dict[str, Any]]) -> None:
        # Weights first, then their metrics line: load_run matches them by epoch.
        runs.save_model(self.run_dir, model, self.cfg, history[-1]["epoch"])
        runs.write_metrics(self.run_dir, history)

    def end(self, state: str, error: str | None = None) -> None:
        try:
            self._status(state, error, ended=True)
        except OSError:
            pass  # the folder went away: nothing left to report into


def _train(cfg: ResNeXtConfig, data: Any, recipe: Recipe, epochs: int, local_batch: int,
           seed: int, device: torch.device, channels_last: bool, autocast: torch.dtype | None,
           rank: int, world: int, writer: _RunWriter | None,
           on_progress: Callable[[dict[str, Any]], None] | None,
           should_stop: Callable[[], bool] | None) -> FitResult:
    from ..model import build_model

    torch.manual_seed(seed * 7919 + rank)  # kornia's augmentation draws from the global RNG
    model = build_model(cfg, generator=torch.Generator().manual_seed(seed),
                        init=recipe.init).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained: nn.Module = model
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = optimizer(recipe, model)
    scaler = torch.amp.GradScaler("cuda") if autocast == torch.float16 else None
    augment = augmentation(recipe, data.train[0][0].shape[-1]).to(device)
    mean = torch.tensor(data.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    sampler = DistributedSampler(range(len(data.train)), num_replicas=world, rank=rank,
                                 shuffle=True, seed=seed)
    shard = len(sampler)
    steps_per_epoch = max(1, shard // local_batch + (1 if shard % local_batch > 1 else 0))
    steps_total = epochs * steps_per_epoch
    history: list[dict[str, Any]] = []
    last_state = None
    stopped = False
    run_start = time.perf_counter()
    seconds_per_step: float | None = None

    def emit(event: dict[str, Any]) -> None:
        if rank != 0:
            return
        if writer is not None:
            writer.progress(event)
        if on_progress is not None:
            on_progress(event)

    def stop_requested() -> bool:
        wanted = bool(should_stop()) if should_stop is not None else False
        if world > 1:  # every process stops at the same step, or a collective would hang
            flag = torch.tensor([1 if wanted else 0])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            wanted = bool(flag.item())
        return wanted

    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.int64)
        trained.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        epoch_start = time.perf_counter()
        last_emit = -math.inf
        for step in range(steps_per_epoch):
            if stop_requested():
                stopped = True
                break
            indices = order[step * local_batch:(step + 1) * local_batch]
            images, labels = _batch(data.train, indices, device, mean, std, channels_last,
                                    augment)
            global_step = epoch * steps_per_epoch + step
            rate = learning_rate(recipe, global_step, steps_per_epoch, epochs)
            for group in opt.param_groups:
                group["lr"] = rate
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                logits = trained(images)
                loss = F.cross_entropy(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            with torch.no_grad():
                loss_sum += loss.detach().double() * labels.numel()
                correct += (logits.argmax(1) == labels).sum()
            seen += labels.numel()
            now = time.perf_counter()
            if rank == 0 and (now - last_emit >= PROGRESS_INTERVAL_S or step == 0
                              or step == steps_per_epoch - 1):
                last_emit = now
                elapsed = now - epoch_start
                done = global_step + 1
                seconds_per_step = (now - run_start) / done
                emit({"kind": "step", "epoch": epoch + 1, "epochs": epochs, "step": step + 1,
                      "steps": steps_per_epoch, "steps_total": steps_total,
                      "global_step": done, "loss": float(loss.detach()), "lr": rate,
                      "images_per_second": seen * world / elapsed if elapsed > 0 else None,
                      "eta_seconds": seconds_per_step * (steps_total - done)})
        if stopped:
            break
        train_seconds = time.perf_counter() - epoch_start
        totals = torch.stack([loss_sum.cpu(), correct.cpu().double(),
                              torch.tensor(float(seen), dtype=torch.float64)])
        if world > 1:
            torch.distributed.all_reduce(totals)
            # BN statistics are each process's own; make every copy rank 0's, so the saved
            # model is the one every process holds.
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        if rank == 0:
            test_loss, test_accuracy = evaluate(model, data.test, mean, std, device,
                                                channels_last, autocast)
        else:  # only rank 0 reports and writes; the others need not spend the time
            test_loss, test_accuracy = math.nan, math.nan
        row = {"epoch": epoch + 1,
               "train_loss": float(totals[0] / totals[2]),
               "train_accuracy": float(totals[1] / totals[2]),
               "test_loss": test_loss, "test_accuracy": test_accuracy,
               "lr": learning_rate(recipe, (epoch + 1) * steps_per_epoch - 1, steps_per_epoch,
                                   epochs),
               "seconds": time.perf_counter() - epoch_start,
               "images_per_second": float(totals[2]) / train_seconds if train_seconds else None}
        history.append(row)
        last_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if writer is not None:
            writer.epoch(model, history)
        done = (epoch + 1) * steps_per_epoch
        emit({"kind": "epoch", "epoch": epoch + 1, "epochs": epochs,
              "step": steps_per_epoch, "steps": steps_per_epoch, "steps_total": steps_total,
              "global_step": done, "loss": row["train_loss"], "lr": row["lr"],
              "images_per_second": row["images_per_second"],
              "eta_seconds": (time.perf_counter() - run_start) / done * (steps_total - done),
              "metrics": dict(row)})
    if stopped and last_state is not None:
        model.load_state_dict(last_state)  # drop the partial epoch
    del trained  # the DDP wrapper must go before the process group is destroyed
    model.eval()
    done_steps = len(history) * steps_per_epoch
    emit({"kind": "done", "epoch": len(history), "epochs": epochs, "step": 0,
          "steps": steps_per_epoch, "steps_total": steps_total, "global_step": done_steps,
          "loss": history[-1]["train_loss"] if history else None,
          "lr": history[-1]["lr"] if history else None,
          "images_per_second": history[-1]["images_per_second"] if history else None,
          "eta_seconds": 0.0, "stopped": stopped,
          "metrics": dict(history[-1]) if history else None})
    return FitResult(history=history, run_dir=writer.run_dir if writer else None, model=model,
                     stopped=stopped)


def describe_error(error: BaseException) -> str:
    """One line for status.json and the CLI: the exception, not its traceback."""
    return "".join(traceback.format_exception_only(type(error), error)).strip()
