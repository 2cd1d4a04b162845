"""`python -m resnext.train`: train a preset or any config on shapes, CIFAR or a folder.

    python -m resnext.train --config '{"cardinality": 4, "bottleneck_width": 16,
        "base_planes": 16, "stage_blocks": [1, 1, 1], "stem": "cifar"}' --data shapes --epochs 5
    torchrun --nproc_per_node=2 -m resnext.train --preset resnext29_8x64d --data cifar10 ...
    python -m resnext.train --resume runs/20261205-101500-c4d16-11-shapes   # continue it

Exit status: 0 when the run finished or was stopped (SIGINT/SIGTERM: the last whole epoch is
kept), 1 when training failed (status.json says why), 2 for bad arguments or data, or a run
that --resume cannot continue.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_DATA_DIR = Path("data")
# Set to a folder to make every process write the SHA-256 of its final state dict there
# (rank<N>.sha256): how the torchrun test checks that all processes hold the same weights.
HASH_DIR_ENV = "RESNEXT_TRAIN_HASH_DIR"


def parser() -> argparse.ArgumentParser:
    from ..presets import PRESETS
    from . import runs
    from .recipes import RECIPE_NAMES

    p = argparse.ArgumentParser(
        prog="python -m resnext.train",
        description=f"Train a ResNeXt variant; the run ({', '.join(runs.FILES)}) goes to --out.")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=sorted(PRESETS),
                       help="a named network (default: none; see --config)")
    model.add_argument("--config", help="a config as JSON (or @file.json); num_classes is "
                                        "set from the data when omitted (default, without "
                                        "--preset: cardinality 4, bottleneck width 16, 16 "
                                        "base planes, stages [1, 1, 1], CIFAR stem)")
    _add_data_flags(p)
    p.add_argument("--epochs", type=int, default=5, help="epochs to train (default 5)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch (default 128)")
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="quick",
                   help="quick: AdamW, one-cycle rate, for short runs (default); seed: "
                        "pytorch-cifar100's SGD schedule")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default cpu; with --resume the "
                                    "run's own; under torchrun cuda means cuda:LOCAL_RANK)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, generated data, data order and augmentation "
                        "(default 0)")
    p.add_argument("--threads", type=int, help="CPU threads per process (default: torch's; "
                                               "with --resume the run's own)")
    p.add_argument("--channels-last", action="store_true",
                   help="train in the channels-last memory format (default: contiguous)")
    p.add_argument("--no-mixed-precision", action="store_true",
                   help="CUDA: train in float32 instead of bf16/fp16 autocast")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (default: eager; if compiling fails "
                        "the run trains eagerly and status.json's note says why; "
                        "estimate(..., compile=True) says whether it pays)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files into RUN/tensorboard/ (default "
                        "off; needs pip install tensorboard)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the run folder itself (created; must not hold a run). Default: "
                        "./runs/<UTC time>-<network>-<data>")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue a stopped, interrupted or failed run from its last finished "
                        "epoch to its planned epochs, as its config.json says (default: "
                        "start a new run). Only --device, --threads and --quiet may go with "
                        "it; under torchrun, as many processes as trained it")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar (default: a bar on stderr)")
    return p


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """--data and what it reads: each dataset's defaults from the data registry."""
    from ..data.registry import DATASETS

    datasets = DATASETS.values()
    p.add_argument("--data", default="shapes", help="; ".join(
        f"{d.argument}: {d.description}" for d in datasets) + " (default shapes)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_DIR, metavar="DIR",
                   help="where CIFAR archives live (default ./data)")
    p.add_argument("--download", action="store_true",
                   help="download a missing CIFAR archive from its official site")
    p.add_argument("--image-size", type=int, help="image side of " + ", ".join(
        f"{d.name} (default {d.image_size})" for d in datasets if not d.fixed_image_size))
    for flag, split, index in (("--train-size", "training", 0), ("--test-size", "test", 1)):
        p.add_argument(flag, type=int, help=", ".join(
            f"{d.name}: {split} images (default {d.sizes[index]})" for d in datasets
            if d.generated) + "; others: use the first N")
    p.add_argument("--shortcut", type=float, help=", ".join(
        f"{d.name}: probability that the marker tells the class (default "
        f"{d.options['shortcut']})" for d in datasets if d.marker))


# What --resume may be given with: where and how fast, never what the run is.
RESUME_FLAGS = ("resume", "device", "threads", "quiet")


def check_arguments(args: argparse.Namespace) -> None:
    """Every number against training's limits (`limits`), before any data is made."""
    from ..validation import whole_number
    from . import limits

    for flag, value, bounds in (
            ("--epochs", args.epochs, limits.EPOCHS_RANGE),
            ("--batch-size", args.batch_size, limits.BATCH_RANGE),
            ("--seed", args.seed, limits.SEED_RANGE),
            ("--threads", args.threads, limits.THREADS_RANGE),
            ("--image-size", args.image_size, limits.IMAGE_SIZE_RANGE),
            ("--train-size", args.train_size, limits.TRAIN_IMAGES_RANGE),
            ("--test-size", args.test_size, limits.TEST_IMAGES_RANGE)):
        if value is not None:
            whole_number(flag, value, *bounds)
    if args.lr is not None:
        limits.learning_rate("--lr", args.lr)
    if args.tensorboard:
        from .board import check_available

        check_available()


def check_resume_arguments(args: argparse.Namespace) -> None:
    """--resume continues a run as it was planned: no flag may change what it is."""
    defaults = parser()
    changed = [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
               if name not in RESUME_FLAGS and value != defaults.get_default(name)]
    if changed:
        raise ValueError(f"--resume continues the run as its config.json says; leave out "
                         f"{', '.join(changed)} (only --device, --threads and --quiet may "
                         f"go with it)")
    if args.threads is not None:
        from ..validation import whole_number
        from .limits import THREADS_RANGE

        whole_number("--threads", args.threads, *THREADS_RANGE)


class StopFlag:
    """SIGINT/SIGTERM ask the run to stop at its next step (the last whole epoch is kept)."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __call__(self) -> bool:
        return self.requested


def load_data(args: argparse.Namespace):
    """The dataset --data names, as the data registry makes it."""
    from ..data import registry

    spec = registry.request_spec(args.data, root=args.data_root, image_size=args.image_size,
                                 n_train=args.train_size, n_test=args.test_size,
                                 seed=args.seed, shortcut=args.shortcut)
    return registry.load(spec, download=args.download)


def load_config(args: argparse.Namespace, num_classes: int):
    from ..config import ResNeXtConfig
    from ..presets import PRESETS

    if args.preset:
        return PRESETS[args.preset].replace(num_classes=num_classes)
    if args.config:
        text = args.config
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config is not valid JSON: {error.msg} (column {error.colno})")
        if not isinstance(values, dict):
            raise ValueError("--config must be a JSON object such as {\"cardinality\": 4}")
        values.setdefault("num_classes", num_classes)
        return ResNeXtConfig.from_dict(values)
    # Default: the small network the benchmark trains to 90 % on shapes in minutes.
    return ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16,
                         stage_blocks=(1, 1, 1), stem="cifar", num_classes=num_classes)


def default_out(cfg, data_name: str) -> Path:
    from .runs import new_run_id

    return DEFAULT_RUNS_DIR / new_run_id(DEFAULT_RUNS_DIR, cfg, data_name)


class ProgressBar:
    """tqdm on stderr, showing the engine's clock: its recent images/s and the time left
    at that rate (`clock`), never tqdm's own averages, so the two agree."""

    # tqdm's own rate and remaining time would be a second clock: the bar leaves them out.
    FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.position = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event["steps_total"], initial=event["global_step"],
                            unit="step", file=sys.stderr, dynamic_ncols=True,
                            bar_format=self.FORMAT)
            self.position = event["global_step"]
        self.bar.update(event["global_step"] - self.position)
        self.position = event["global_step"]
        self.bar.set_postfix(self.postfix(event), refresh=False)
        if event["kind"] == "done":
            self.bar.close()

    @staticmethod
    def postfix(event: dict[str, Any]) -> dict[str, str]:
        from ..units import duration

        postfix = {"epoch": f"{event['epoch']}/{event['epochs']}"}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event['loss']:.3f}"
        if event.get("images_per_second"):
            postfix["img/s"] = f"{event['images_per_second']:.0f}"
        if event.get("eta_seconds") is not None and event["kind"] != "done":
            postfix["left"] = duration(event["eta_seconds"])
        if event["kind"] == "epoch":
            postfix["test acc"] = f"{event['metrics']['test_accuracy']:.3f}"
        return postfix


def table(history: list[dict[str, Any]]) -> str:
    header = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "s", "img/s")
    rows = [header] + [(str(h["epoch"]), f"{h['train_loss']:.4f}", f"{h['train_accuracy']:.4f}",
                        f"{h['test_loss']:.4f}", f"{h['test_accuracy']:.4f}", f"{h['lr']:.4g}",
                        f"{h['seconds']:.1f}", f"{h['images_per_second']:.0f}") for h in history]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _state_hash(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None, handle_signals: bool = True) -> int:
    """Run the CLI; returns the exit status. `handle_signals=False` leaves the caller's
    SIGINT/SIGTERM handlers alone (for calling it in-process)."""
    args = parser().parse_args(argv)
    stop = StopFlag()
    if handle_signals:
        stop.install()

    from .. import data as datasets

    try:
        job = prepare_resume(args) if args.resume is not None else prepare_new(args)
    except (ValueError, KeyError, OSError, datasets.DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    out = _join_processes(job.world, job.device, job.out)
    try:
        return _train_and_report(args, job, out, stop)
    finally:
        if job.world > 1:
            _leave_processes()


@dataclass(frozen=True)
class Job:
    """What the command will train: a new run, or the continuation of one (`resume`)."""

    cfg: Any
    data: Any
    out: Path
    device: str
    world: int
    rank: int
    recipe: str
    epochs: int
    resume: bool = False


def prepare_new(args: argparse.Namespace) -> Job:
    import torch

    world, rank, device = _processes(args.device or "cpu")
    check_arguments(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = load_data(args)
    cfg = load_config(args, len(data.classes))
    out = args.out if args.out is not None else default_out(cfg, data.name)
    return Job(cfg, data, out, device, world, rank, args.recipe, args.epochs)


def prepare_resume(args: argparse.Namespace) -> Job:
    """The run --resume names, checked (`runs.check_resumable`) before anything is loaded;
    its device and CPU threads are the ones it trained with unless given (the same thread
    count is what makes a resumed CPU run bit-identical to one left alone)."""
    import torch

    from ..config import ResNeXtConfig
    from ..data import registry
    from . import runs

    check_resume_arguments(args)
    runs.check_resumable(args.resume)
    config = runs.read_config(args.resume) or {}
    environment = config.get("environment") or {}
    recorded = str(environment.get("device", "cpu"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and recorded.startswith("cuda"):
        recorded = "cuda"  # each process its own GPU again (`_processes`)
    world, rank, device = _processes(args.device or recorded)
    threads = args.threads or (environment.get("threads") if device == "cpu" else None)
    if threads:
        torch.set_num_threads(int(threads))
    if config.get("tensorboard"):
        from .board import check_available

        check_available()
    data = registry.load(config["data"])
    return Job(ResNeXtConfig.from_dict(config["model"]), data, args.resume, device, world, rank,
               str(config["recipe"]["name"]), int(config["epochs"]), resume=True)


def _processes(device: str) -> tuple[int, int, str]:
    """(world size, rank, device) under torchrun (1, 0, device otherwise): a bare "cuda"
    is this process's own GPU, cuda:LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and device.startswith("cuda") and ":" not in device:
        device = f"cuda:{local_rank}"
    return world, rank, device


def _join_processes(world: int, device: str, out: Path) -> Path:
    """Under torchrun: join the process group; every process writes into rank 0's folder."""
    if world == 1:
        return out
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    names = [str(out)]
    dist.broadcast_object_list(names, src=0)
    return Path(names[0])


def _leave_processes() -> None:
    import gc

    import torch.distributed as dist

    gc.collect()  # no DDP wrapper may outlive the process group
    try:
        dist.barrier()
    except Exception:  # noqa: BLE001 - a failed peer: still tear down
        pass
    dist.destroy_process_group()


def _train_and_report(args: argparse.Namespace, job: Job, out: Path, stop: StopFlag) -> int:
    from .engine import describe_error, fit, resume

    progress = ProgressBar(job.rank == 0 and not args.quiet)
    try:
        if job.resume:
            result = resume(out, job.data, device=job.device, on_progress=progress,
                            should_stop=stop)
        else:
            result = fit(job.cfg, job.data, epochs=args.epochs, batch_size=args.batch_size,
                         recipe=args.recipe, lr=args.lr, device=job.device, seed=args.seed,
                         channels_last=args.channels_last, out_dir=out, on_progress=progress,
                         should_stop=stop,
                         mixed_precision=False if args.no_mixed_precision else None,
                         compile=args.compile, tensorboard=args.tensorboard)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - status.json has it; say it in one line
        print(f"training failed: {describe_error(error)}", file=sys.stderr)
        return EXIT_FAILED
    if os.environ.get(HASH_DIR_ENV):
        Path(os.environ[HASH_DIR_ENV], f"rank{job.rank}.sha256").write_text(
            _state_hash(result.model))
    if job.rank == 0:
        resumed = " (resumed)" if job.resume else ""
        print(f"{job.cfg.name} on {job.data.name}: {len(job.data.train)} training / "
              f"{len(job.data.test)} test images, {job.epochs} epochs, recipe "
              f"{job.recipe}{resumed}")
        print(table(result.history) if result.history else "no epoch finished")
        state = f"stopped by {stop.signal_name or 'request'}" if result.stopped else "finished"
        print(f"{state}; run folder: {out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
