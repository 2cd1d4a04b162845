"""A run on disk: one folder, plain files, written so a reader never sees half a file.

    config.json        what was trained on what: {"model", "data", "recipe", "epochs",
                       "batch_size", "seed", "channels_last", "mixed_precision", "environment"}
    metrics.jsonl      one JSON object per finished epoch (see `METRIC_KEYS`); the last line
                       is the saved model's, `best_epoch` finds the best one
    model.safetensors  build_model(cfg)'s state dict after the last finished epoch; its
                       metadata holds "epoch" (1-based) and "config" (the model's JSON)
    status.json        {"state": "running" | "finished" | "stopped" | "failed", "pid",
                       "started_at", "ended_at", "error", "epochs", "device"}
    progress.json      the latest progress event (written at most about twice a second)

model.safetensors, status.json, progress.json and metrics.jsonl are replaced atomically
(written to a temporary file in the folder, then `os.replace`d), so a run stopped or
killed at any moment keeps its last whole epoch, and a process following the folder reads
either the old file or the new one. Reading a run's files needs no torch (the app follows
runs with this module); saving and loading the model does.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..config import ResNeXtConfig

if TYPE_CHECKING:  # torch is imported where a model is saved or loaded, not to read a run
    import torch

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
               "seconds", "images_per_second")
STATES = ("running", "finished", "stopped", "failed")


class RunError(ValueError):
    """A run folder that cannot be read (missing, incomplete or inconsistent files)."""


def write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def prepare_folder(run_dir: Path) -> Path:
    """Create the run folder; refuse one that already holds a run."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a folder for a run")
    taken = [name for name in (CONFIG_FILE, METRICS_FILE, MODEL_FILE) if (run_dir / name).exists()]
    if taken:
        raise RunError(f"{run_dir} already holds a run ({', '.join(taken)}); choose a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def save_model(run_dir: Path, model: torch.nn.Module, cfg: ResNeXtConfig, epoch: int) -> None:
    from safetensors.torch import save

    state = {name: tensor.detach().to("cpu").contiguous()
             for name, tensor in model.state_dict().items()}
    metadata = {"epoch": str(epoch), "config": json.dumps(cfg.to_dict())}
    write_atomic(run_dir / MODEL_FILE, save(state, metadata=metadata))


def write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    write_atomic(run_dir / METRICS_FILE, text.encode())


def best_after(config: Mapping[str, Any]) -> int:
    """The epoch after which a run's best test accuracy counts (0: every epoch counts).

    pytorch-cifar100 saves and reports its best checkpoint only after its second milestone
    (train.py: `if epoch > settings.MILESTONES[1] and best_acc < acc`, epoch 120 of 200), so a
    run with the "seed" recipe counts its best the same way (after round(0.6 * epochs)), which
    makes it comparable with its README's numbers; any other run counts every epoch.
    """
    recipe = config.get("recipe") or {}
    milestones = recipe.get("milestones") or []
    epochs = config.get("epochs")
    if recipe.get("name") != "seed" or len(milestones) < 2 or not isinstance(epochs, int):
        return 0
    return round(milestones[1] * epochs)


def best_epoch(history: list[dict[str, Any]], after: int = 0) -> dict[str, Any] | None:
    """The metrics line of the best test accuracy among epochs > `after`, or None.

    Of equal accuracies the earliest wins (train.py's strict `best_acc < acc`)."""
    best = None
    for row in history:
        accuracy = row.get("test_accuracy")
        if (isinstance(row.get("epoch"), int) and row["epoch"] > after
                and isinstance(accuracy, (int, float)) and math.isfinite(accuracy)
                and (best is None or accuracy > best["test_accuracy"])):
            best = row
    return best


def read_json(path: Path) -> Any:
    """A JSON file's value, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The finished epochs' lines of metrics.jsonl ([] without the file)."""
    try:
        lines = (Path(run_dir) / METRICS_FILE).read_text().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # the file is replaced atomically; a torn line ends what can be trusted
    return rows


def load_run(path: str | os.PathLike[str], device: str | torch.device = "cpu"
             ) -> tuple[ResNeXtConfig, torch.nn.Module, dict[str, Any]]:
    """(cfg, model in eval mode, meta) of a run folder.

    meta: the config.json contents plus "epoch" (of the saved weights), "metrics" (that
    epoch's line of metrics.jsonl), "history" (every line) and "status" (status.json, or
    None). Weights are read with safetensors: nothing in the folder can run code.
    """
    from safetensors import safe_open

    from ..model import build_model
    from ..weights import check_state_dict

    run_dir = Path(path)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise RunError(f"{run_dir} is not a run folder: it has no {CONFIG_FILE}")
    try:
        meta: dict[str, Any] = json.loads(config_path.read_text())
        cfg = ResNeXtConfig.from_dict(meta["model"])
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(f"{config_path} is not a valid run config ({error})") from error
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file():
        raise RunError(f"{run_dir} has no {MODEL_FILE}: the run finished no epoch yet")
    try:
        with safe_open(str(model_path), framework="pt", device="cpu") as file:
            epoch = int((file.metadata() or {}).get("epoch", 0))
            state = {name: file.get_tensor(name) for name in file.keys()}
    except Exception as error:  # noqa: BLE001 - safetensors raises several types
        raise RunError(f"{model_path} could not be read as safetensors ({error})") from error
    model = build_model(cfg, device="meta")
    check_state_dict(model, state)
    model = build_model(cfg)
    model.load_state_dict(state, strict=True)
    history = read_metrics(run_dir)
    # The weights are saved before their metrics line: pick the line of their own epoch.
    metrics = next((row for row in history if row.get("epoch") == epoch), None)
    status_path = run_dir / STATUS_FILE
    meta.update(epoch=epoch, metrics=metrics, history=history,
                status=json.loads(status_path.read_text()) if status_path.is_file() else None)
    return cfg, model.to(device).eval(), meta


def status_record(state: str, started_at: str, epochs: int, device: str,
                  error: str | None = None, ended: bool = False,
                  pid: int | None = -1) -> Mapping[str, Any]:
    """status.json's record; `pid` -1 is this process, None a run that never started."""
    return {"state": state, "pid": os.getpid() if pid == -1 else pid, "started_at": started_at,
            "ended_at": timestamp() if ended else None, "error": error, "epochs": epochs,
            "device": device}
