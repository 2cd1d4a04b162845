"""`python -m resnext.train`: train a preset or any config on shapes, CIFAR or a folder.

    python -m resnext.train --config '{"cardinality": 4, "bottleneck_width": 16,
        "base_planes": 16, "stage_blocks": [1, 1, 1], "stem": "cifar"}' --data shapes --epochs 5
    torchrun --nproc_per_node=2 -m resnext.train --preset resnext29_8x64d --data cifar10 ...

Exit status: 0 when the run finished or was stopped (SIGINT/SIGTERM: the last whole epoch is
kept), 1 when training failed (status.json says why), 2 for bad arguments or data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_DATA_DIR = Path("data")
# Set to a folder to make every process write the SHA-256 of its final state dict there
# (rank<N>.sha256): how the torchrun test checks that all processes hold the same weights.
HASH_DIR_ENV = "RESNEXT_TRAIN_HASH_DIR"


def parser() -> argparse.ArgumentParser:
    from ..data.registry import DATASETS
    from ..presets import PRESETS
    from . import runs
    from .recipes import RECIPE_NAMES

    p = argparse.ArgumentParser(
        prog="python -m resnext.train",
        description=f"Train a ResNeXt variant; the run ({', '.join(runs.FILES)}) goes to --out.")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=sorted(PRESETS), help="a named network")
    model.add_argument("--config", help="a config as JSON (or @file.json); num_classes is "
                                        "set from the data when omitted")
    datasets = DATASETS.values()
    p.add_argument("--data", default="shapes", help="; ".join(
        f"{d.argument}: {d.description}" for d in datasets) + " (default shapes)")
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA_DIR,
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
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128, help="global batch (default 128)")
    p.add_argument("--recipe", choices=RECIPE_NAMES, default="quick")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu; "
                                                   "under torchrun cuda means cuda:LOCAL_RANK)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads per process (default: torch's)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-mixed-precision", action="store_true",
                   help="CUDA: train in float32 instead of bf16/fp16 autocast")
    p.add_argument("--out", type=Path,
                   help="the run folder itself (created; must not hold a run). Default: "
                        "./runs/<UTC time>-<network>-<data>")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


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
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.position = 0

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event["steps_total"], unit="step", file=sys.stderr,
                            dynamic_ncols=True)
        self.bar.update(event["global_step"] - self.position)
        self.position = event["global_step"]
        postfix = {"epoch": f"{event['epoch']}/{event['epochs']}"}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event['loss']:.3f}"
        if event.get("images_per_second"):
            postfix["img/s"] = f"{event['images_per_second']:.0f}"
        if event["kind"] == "epoch":
            postfix["test acc"] = f"{event['metrics']['test_accuracy']:.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        if event["kind"] == "done":
            self.bar.close()


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

    import torch

    from .. import data as datasets

    world, rank, device = _processes(args.device)
    try:
        check_arguments(args)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        data = load_data(args)
        cfg = load_config(args, len(data.classes))
        out = args.out if args.out is not None else default_out(cfg, data.name)
    except (ValueError, OSError, datasets.DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    out = _join_processes(world, device, out)
    try:
        return _train_and_report(args, cfg, data, out, device, rank, stop)
    finally:
        if world > 1:
            _leave_processes()


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


def _train_and_report(args: argparse.Namespace, cfg: Any, data: Any, out: Path, device: str,
                      rank: int, stop: StopFlag) -> int:
    from .engine import describe_error, fit

    try:
        result = fit(cfg, data, epochs=args.epochs, batch_size=args.batch_size,
                     recipe=args.recipe, lr=args.lr, device=device, seed=args.seed,
                     channels_last=args.channels_last, out_dir=out,
                     on_progress=ProgressBar(rank == 0 and not args.quiet), should_stop=stop,
                     mixed_precision=False if args.no_mixed_precision else None)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - status.json has it; say it in one line
        print(f"training failed: {describe_error(error)}", file=sys.stderr)
        return EXIT_FAILED
    if os.environ.get(HASH_DIR_ENV):
        Path(os.environ[HASH_DIR_ENV], f"rank{rank}.sha256").write_text(
            _state_hash(result.model))
    if rank == 0:
        print(f"{cfg.name} on {data.name}: {len(data.train)} training / "
              f"{len(data.test)} test images, {args.epochs} epochs, recipe {args.recipe}")
        print(table(result.history) if result.history else "no epoch finished")
        state = f"stopped by {stop.signal_name or 'request'}" if result.stopped else "finished"
        print(f"{state}; run folder: {out}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
