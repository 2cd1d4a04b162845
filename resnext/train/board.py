"""A run's scalars as TensorBoard event files (`fit(tensorboard=True)`, `--tensorboard`), as
pytorch-cifar100's train.py writes them (SummaryWriter: Train/loss and Train/lr per step,
Test/loss and Test/accuracy per epoch), into `<run>/tensorboard/`, so that
`tensorboard --logdir runs` shows every run. metrics.jsonl stays the source of truth; the
event files are a view of it. Optional: the `tensorboard` package must be installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from . import runs

MISSING = ("TensorBoard event files need the tensorboard package: pip install tensorboard "
           "(or train without --tensorboard)")
# Per epoch (x: the epoch), from a metrics row: tag -> its key.
EPOCH_TAGS = {"Train/epoch_loss": "train_loss", "Train/accuracy": "train_accuracy",
              "Test/loss": "test_loss", "Test/accuracy": "test_accuracy"}


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def check_available() -> None:
    if not available():
        raise ValueError(MISSING)


class Board:
    """Rank 0's event writer. `purge_step`: on resume, the global step the run continues
    from; TensorBoard then drops what an interrupted epoch wrote after it."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / runs.TENSORBOARD_DIR),
                                    purge_step=purge_step)

    def step(self, event: dict[str, Any]) -> None:
        """A step event's loss and rate, at its global step."""
        if event.get("loss") is not None:
            self.writer.add_scalar("Train/loss", event["loss"], event["global_step"])
        if event.get("lr") is not None:
            self.writer.add_scalar("Train/lr", event["lr"], event["global_step"])

    def epoch(self, row: dict[str, Any]) -> None:
        for tag, key in EPOCH_TAGS.items():
            self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
