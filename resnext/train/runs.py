"""A run on disk: one folder, plain files, written so a reader never sees half a file.

    config.json        what was trained on what: {"model", "data", "recipe", "epochs",
                       "batch_size", "seed", "channels_last", "mixed_precision", "environment"}
    metrics.jsonl      one JSON object per finished epoch (see `METRIC_KEYS`); the last line
                       is the saved model's, `best_epoch` finds the best one
    model.safetensors  build_model(cfg)'s state dict after the last finished epoch; its
                       metadata holds "epoch" (1-based) and "config" (the model's JSON)
    status.json        {"state": "running" | "finished" | "stopped" | "failed", "pid",
                       "started_at", "ended_at", "error", "epochs", "device", "resumed"
                       (one {"at_epoch", "at"} per resume), "note" (e.g. compile fell back)};
                       a launcher that queues a run writes "queued" first
    progress.json      the latest progress event (written at most about twice a second)
    resume.safetensors what continuing needs that is a tensor: the weights again (so that
                       the file is whole on its own: a kill between two files cannot
                       strand a run), the optimizer's state and every process's torch RNG
                       state; metadata "epoch"
    resume.json        the rest: epoch and step counts, the optimizer's hyper-parameters, the
                       gradient scaler, python/numpy RNG states, the finished epochs' rows
    tensorboard/       TensorBoard event files, when the run was asked for them
    train.log          what the training process printed, where a launcher keeps it (the app)
    request.json       written by a launcher (the app) when it queues the run, before any
                       process starts, and never by the training: {"owner", "order",
                       "queued_at", "request"}: who asked, in which order, for what

model.safetensors, the resume files, status.json, progress.json and metrics.jsonl are
replaced atomically
(written to a temporary file in the folder, then `os.replace`d), so a run stopped or
killed at any moment keeps its last whole epoch, and a process following the folder reads
either the old file or the new one. Reading a run's files needs no torch (the app follows
runs with this module); saving and loading the model does.

Everything that knows these names lives here: the files, a run id (`run_dir`), a run's
record as a table shows it (`read_run`, with "interrupted" for a run whose process is
gone), which runs are usable (`usable_run`), a new run's name (`new_run_id`), the queue
on disk (`queue_run`, `queued_runs`, `claim`), who may stop or delete a run (`check_owner`)
and deleting one (`delete_run`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping

from ..config import ResNeXtConfig
from ..data.registry import DATASETS

if TYPE_CHECKING:  # torch is imported where a model is saved or loaded, not to read a run
    import torch

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
MODEL_FILE = "model.safetensors"
STATUS_FILE = "status.json"
PROGRESS_FILE = "progress.json"
LOG_FILE = "train.log"
RESUME_TENSORS_FILE = "resume.safetensors"
RESUME_STATE_FILE = "resume.json"
TENSORBOARD_DIR = "tensorboard"
REQUEST_FILE = "request.json"
# Created (O_EXCL) by the launcher that starts a queued run: two servers on one runs
# directory never start the same queued run twice.
CLAIM_FILE = ".claimed"
FILES = (CONFIG_FILE, METRICS_FILE, MODEL_FILE, STATUS_FILE, PROGRESS_FILE,  # what a run writes
         RESUME_TENSORS_FILE, RESUME_STATE_FILE)
METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr",
               "seconds", "images_per_second")
STATES = ("running", "finished", "stopped", "failed")  # what the training writes
QUEUED = "queued"  # what a launcher writes when it queues a run (`queue_run`)
# A run's state as a reader sees it: status.json's, or "interrupted" when it says running
# but its process is gone (killed, or the machine restarted).
RECORD_STATES = (QUEUED, *STATES, "interrupted")
USABLE_STATES = ("finished", "stopped")  # ended with the weights of its last whole epoch
# Ended before its planned epochs: continued by `python -m resnext.train --resume RUN_DIR`
# when it kept its resume state (it does at every finished epoch).
RESUMABLE_STATES = ("stopped", "interrupted", "failed")
RESUMED_MARK = " (resumed)"  # after a resumed run's state in a runs table: "finished (resumed)"
# What the training process's command line holds (how `pid_alive` knows it is one).
TRAINING_MODULE = "resnext.train"


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


def write_resume(run_dir: Path, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]
                 ) -> None:
    """The resume files of `state["epoch"]`: tensors in safetensors, the rest in JSON (the
    JSON last: it is what says the epoch can be continued)."""
    from safetensors.torch import save

    cpu = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
    metadata = {"epoch": str(state["epoch"])}
    write_atomic(Path(run_dir) / RESUME_TENSORS_FILE, save(cpu, metadata=metadata))
    write_json(Path(run_dir) / RESUME_STATE_FILE, dict(state))


def read_resume(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, state) of the resume files, after `check_resumable` passed."""
    from safetensors.torch import load_file

    return load_file(str(Path(run_dir) / RESUME_TENSORS_FILE)), json.loads(
        (Path(run_dir) / RESUME_STATE_FILE).read_text())


def remove_resume(run_dir: Path) -> None:
    """A finished run has nothing to continue: its resume files go (the optimizer's state
    is as large as the model)."""
    for name in (RESUME_STATE_FILE, RESUME_TENSORS_FILE):
        (Path(run_dir) / name).unlink(missing_ok=True)


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file, read from its JSON header without torch (the
    format: 8 bytes little-endian header length, then the header)."""
    with open(path, "rb") as file:
        length = int.from_bytes(file.read(8), "little")
        if not 0 < length <= 100_000_000:
            raise RunError(f"{path.name} is not a safetensors file")
        header = json.loads(file.read(length))
    return dict(header.get("__metadata__") or {})


def check_resumable(run_dir: Path) -> RunRecord:
    """The record of a run that `--resume` can continue, or a RunError in one line saying
    why not: not a run, running, finished, no resume state, or a state that disagrees
    with the saved weights."""
    run_dir = Path(run_dir)
    record = read_run(run_dir) if run_dir.is_dir() else None
    if record is None or read_config(run_dir) is None:
        raise RunError(f"{run_dir} is not a run folder: it has no readable {CONFIG_FILE}")
    status = read_status(run_dir)
    # A launcher that queued the resume (`queue_resume`) claims it, then marks it running
    # with this process's pid: both mean this process is the one continuing it.
    launched = (record.state == QUEUED and (run_dir / CLAIM_FILE).exists()) or (
        record.state == "running" and status.get("pid") == os.getpid())
    if record.state in ("running", QUEUED) and not launched:
        raise RunError(f"{record.run_id} is {record.state} (process {status.get('pid')}): "
                       f"stop it first, or let it finish")
    if record.state == "finished":
        raise RunError(f"{record.run_id} finished its {record.epochs} epochs: there is nothing "
                       f"to resume")
    state = read_json(run_dir / RESUME_STATE_FILE)
    if not isinstance(state, dict) or not (run_dir / RESUME_TENSORS_FILE).is_file():
        raise RunError(f"{record.run_id} has no resume state ({RESUME_STATE_FILE}, "
                       f"{RESUME_TENSORS_FILE}): it finished no epoch; start it again instead")
    try:
        saved = int(safetensors_metadata(run_dir / RESUME_TENSORS_FILE)["epoch"])
    except (OSError, ValueError, KeyError) as error:
        raise RunError(f"{record.run_id}'s {RESUME_TENSORS_FILE} cannot be read ({error})"
                       ) from None
    if saved != state.get("epoch"):
        raise RunError(f"{record.run_id}'s resume files disagree ({RESUME_TENSORS_FILE}: epoch "
                       f"{saved}, {RESUME_STATE_FILE}: {state.get('epoch')}): it ended while "
                       f"saving an epoch and cannot be resumed")
    if state["epoch"] >= record.epochs:
        raise RunError(f"{record.run_id} has all its {record.epochs} epochs: nothing to resume")
    return record


def status_record(state: str, started_at: str, epochs: int, device: str,
                  error: str | None = None, ended: bool = False,
                  pid: int | None = -1, resumed: list[dict[str, Any]] | None = None,
                  note: str | None = None) -> Mapping[str, Any]:
    """status.json's record; `pid` -1 is this process, None a run that never started;
    `resumed` one {"at_epoch", "at"} per time the run was continued; `note` what the run
    wants a reader to know that is not an error (compiling fell back to eager)."""
    return {"state": state, "pid": os.getpid() if pid == -1 else pid, "started_at": started_at,
            "ended_at": timestamp() if ended else None, "error": error, "epochs": epochs,
            "device": device, "resumed": list(resumed or []), "note": note}


# Files by name: the one place that joins a run folder and a file name -----------------------

def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    write_json(Path(run_dir) / CONFIG_FILE, config)


def write_status(run_dir: Path, record: Mapping[str, Any]) -> None:
    """status.json (a `status_record`)."""
    write_json(Path(run_dir) / STATUS_FILE, dict(record))


def write_progress(run_dir: Path, event: Mapping[str, Any]) -> None:
    write_json(Path(run_dir) / PROGRESS_FILE, event)


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """config.json, or None when it is missing, unreadable or not an object."""
    config = read_json(Path(run_dir) / CONFIG_FILE)
    return config if isinstance(config, dict) else None


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json ({} when it is missing or unreadable)."""
    status = read_json(Path(run_dir) / STATUS_FILE)
    return status if isinstance(status, dict) else {}


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """The latest progress event, or None."""
    event = read_json(Path(run_dir) / PROGRESS_FILE)
    return event if isinstance(event, dict) else None


def model_file(run_dir: Path) -> Path:
    """The saved weights' file (it exists once an epoch has finished)."""
    return Path(run_dir) / MODEL_FILE


def log_file(run_dir: Path) -> Path:
    return Path(run_dir) / LOG_FILE


def log_tail(run_dir: Path, lines: int = 3) -> str:
    """The last lines of train.log, joined by " / " (600 characters at most)."""
    try:
        text = log_file(run_dir).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " / ".join(kept)[-600:]


def trained_config(run_dir: Path) -> dict[str, Any]:
    """config.json of a run whose network and data can be rebuilt (model, and the data's
    classes, image size, mean and std), or a RunError naming the run."""
    run_dir = Path(run_dir)
    try:
        meta = json.loads((run_dir / CONFIG_FILE).read_text())
        data = meta["data"]
        meta["model"], data["classes"], data["image_size"], data["mean"], data["std"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"{run_dir.name} is not a readable run ({error})") from None
    return meta


def load_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """The saved state dict, read with safetensors: nothing in the file can run code."""
    from safetensors.torch import load_file

    return load_file(str(model_file(run_dir)))


# Run ids and records --------------------------------------------------------------------------

def run_dir(runs_dir: str | os.PathLike[str], run_id: Any) -> Path:
    """The folder of run `run_id`: a folder name directly inside `runs_dir`. Anything else
    (empty, a path such as "../x" or "/etc", a hidden name such as ".x") is a ValueError:
    every reader of a run id from a page or an API call comes through here."""
    if (not isinstance(run_id, str) or not run_id.strip() or run_id.startswith(".")
            or Path(run_id).name != run_id or any(c in run_id for c in "/\\\0")
            or len(run_id) > 255):
        raise ValueError(f"not a run id: {run_id!r} (a run id is the name of a folder directly "
                         f"inside the runs directory, not starting with '.')")
    return Path(runs_dir) / run_id


def new_run_id(runs_dir: str | os.PathLike[str], cfg: ResNeXtConfig, data: str,
               taken: Any = ()) -> str:
    """A fresh run id: `<UTC time>-c<C>d<d>-<depth>-<data>`, with -2, -3, ... when that
    folder exists (or is in `taken`). A data argument's path separators become dashes."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{stamp}-c{cfg.cardinality}d{cfg.bottleneck_width}-{cfg.depth}-{data}"
    base = base.replace(":", "-").replace("/", "-").replace("\\", "-")
    run_id, n = base, 1
    while run_id in taken or (Path(runs_dir) / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def process_alive(pid: Any, module: str) -> bool:
    """Whether `pid` is a live (not zombie) process of `python -m <module>`."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): existence only
            return True
        except OSError:
            return False
    # A finished child not yet reaped is a zombie ('Z'): it works no more.
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
    return module.encode() in cmdline and state != "Z"


def pid_alive(pid: Any) -> bool:
    """Whether `pid` is a live (not zombie) process of `python -m resnext.train`."""
    return process_alive(pid, TRAINING_MODULE)


def running_pid(run_dir: Path) -> int | None:
    """The pid of the live process training this run (status.json's), or None."""
    status = read_status(run_dir)
    pid = status.get("pid")
    return pid if status.get("state") == "running" and pid_alive(pid) else None


@dataclass
class RunRecord:
    """What a runs table shows of one run folder: read from its files, no torch."""

    run_id: str
    state: str  # one of RECORD_STATES
    network: str  # the config's name, "?" when unreadable
    dataset: str
    epochs_done: int
    epochs: int
    test_accuracy: float | None  # the last finished epoch's (its weights are the saved ones)
    seconds: float
    device: str
    started_at: str
    error: str | None = None
    best_accuracy: float | None = None  # the best epoch's, counted after `best_after`
    best_epoch: int | None = None
    best_after: int = 0  # seed-recipe runs count as pytorch-cifar100 does (`best_after`)
    resumed: int = 0  # times the run was continued (`--resume`)
    resumable: bool = False  # ended early with its resume state: `--resume` can continue it
    owner: str | None = None  # who queued it (request.json); None: started outside the app
    size_bytes: int = 0  # its files' bytes on disk (`folder_size`)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_run(run_dir: Path) -> RunRecord | None:
    """The record of a run folder, or None when it holds no run (yet)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    status = read_status(run_dir)
    if config is None:
        return _unstarted_record(run_dir, status)
    history = read_metrics(run_dir)
    state = status.get("state", "running")
    if state == "running" and not pid_alive(status.get("pid")):
        state = "interrupted"  # its process is gone: a restart (or a kill) ended it
    after = best_after(config)
    best = best_epoch(history, after) or {}
    resumed = status.get("resumed")
    return RunRecord(
        run_id=run_dir.name, state=state, network=_network_name(config.get("model")),
        dataset=str((config.get("data") or {}).get("name", "?")),
        epochs_done=len(history), epochs=int(config.get("epochs", 0)),
        test_accuracy=history[-1].get("test_accuracy") if history else None,
        seconds=sum(row.get("seconds", 0.0) for row in history),
        device=str(config.get("environment", {}).get("device", status.get("device", "?"))),
        started_at=str(status.get("started_at", "")), error=status.get("error"),
        best_accuracy=best.get("test_accuracy"), best_epoch=best.get("epoch"), best_after=after,
        resumed=len(resumed) if isinstance(resumed, list) else 0,
        resumable=state in RESUMABLE_STATES and (run_dir / RESUME_STATE_FILE).is_file(),
        owner=owner(run_dir), size_bytes=folder_size(run_dir))


def _unstarted_record(run_dir: Path, status: Mapping[str, Any]) -> RunRecord | None:
    """A run with no config.json yet: queued or starting (its request.json, if any, says
    what it will be), or failed before writing its config; None without a status."""
    state = status.get("state")
    if state == "running" and not pid_alive(status.get("pid")):
        state = "interrupted"
    if state not in (QUEUED, "running", "failed", "interrupted"):
        return None
    asked = (read_request(run_dir) or {}).get("request") or {}
    return RunRecord(
        run_dir.name, state, _network_name(asked.get("config")), str(asked.get("data", "?")),
        0, int(status.get("epochs") or 0), None, 0.0, str(status.get("device", "?")),
        str(status.get("started_at", "")), status.get("error"), owner=owner(run_dir),
        size_bytes=folder_size(run_dir))


def _network_name(model: Any) -> str:
    try:
        return ResNeXtConfig.from_dict(model).name
    except (ValueError, TypeError, AttributeError):
        return "?"


def list_runs(runs_dir: str | os.PathLike[str]) -> list[RunRecord]:
    """Every run in `runs_dir`, newest first (run ids start with their UTC time)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    folders = sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name, reverse=True)
    return [record for record in map(read_run, folders) if record is not None]


def has_masks(dataset: str) -> bool:
    """Whether runs on `dataset` have test images with object masks (attributions can be
    scored against them): the data registry says."""
    entry = DATASETS.get(dataset)
    return entry is not None and entry.masks


def usable(record: RunRecord, runs_dir: str | os.PathLike[str], masks: bool = False) -> bool:
    """Whether a run can be used (its weights loaded, evaluated, chosen): ended finished or
    stopped, with saved weights; with `masks`, also trained on a dataset with masks."""
    return (record.state in USABLE_STATES and (not masks or has_masks(record.dataset))
            and model_file(Path(runs_dir) / record.run_id).is_file())


def usable_run(runs_dir: str | os.PathLike[str], run_id: Any, masks: bool = False) -> Path:
    """The folder of a usable run (see `usable`), or a ValueError that says why it is not."""
    folder = run_dir(runs_dir, run_id)
    record = read_run(folder) if folder.is_dir() else None
    if record is None:
        raise RunError(f"no run {run_id!r} in the runs directory")
    if masks and not has_masks(record.dataset):
        masked = " or ".join(name for name, entry in DATASETS.items() if entry.masks)
        raise RunError(f"{run_id} was trained on {record.dataset}, whose test images have no "
                       f"object masks; evaluation needs a run on {masked}")
    if not usable(record, runs_dir):
        raise RunError(f"{run_id} is {record.state}; only finished or stopped runs with saved "
                       f"weights can be used")
    return folder


# Owners, the queue on disk, deleting ------------------------------------------------------------

class RunAccessError(RunError):
    """A user asked to stop, resume or delete a run that is neither theirs nor an admin's
    to manage (`check_owner`); nothing was changed."""


def folder_size(folder: str | os.PathLike[str]) -> int:
    """Bytes of the files under `folder` (links not followed): what deleting it frees."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # replaced or removed while we looked: the next listing counts it
            total += stat.st_size
    return total


def read_request(run_dir: Path) -> dict[str, Any] | None:
    """request.json (`queue_run`), or None for a run started outside a launcher."""
    record = read_json(Path(run_dir) / REQUEST_FILE)
    return record if isinstance(record, dict) else None


def owner(run_dir: Path) -> str | None:
    """Who queued the run (request.json's owner), or None when no owner is recorded."""
    name = (read_request(run_dir) or {}).get("owner")
    return name if isinstance(name, str) and name else None


def queue_run(runs_dir: str | os.PathLike[str], run_id: str, owner: str,
              request: Mapping[str, Any], epochs: int, device: str) -> Path:
    """Create the folder of a run that waits to start: request.json (who asked, when, in
    which order, what) and status.json saying "queued". A queued run is on disk from the
    moment it is accepted, so a restart keeps it in its place (`queued_runs`)."""
    folder = run_dir(runs_dir, run_id)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir()  # a FileExistsError if taken: `new_run_id` picks a free name
    # Nanoseconds of the wall clock: later requests sort later, also across restarts.
    write_json(folder / REQUEST_FILE, {"owner": owner, "order": time.time_ns(),
                                       "queued_at": timestamp(), "request": dict(request)})
    write_status(folder, status_record(QUEUED, "", epochs, device, pid=None))
    return folder


def queued_runs(runs_dir: str | os.PathLike[str]) -> list[tuple[str, dict[str, Any]]]:
    """(run id, request.json) of every run waiting to start that no launcher has claimed,
    in the order they were queued."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    waiting = []
    for folder in runs_dir.iterdir():
        if (folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink()
                or read_status(folder).get("state") != QUEUED or (folder / CLAIM_FILE).exists()):
            continue
        record = read_request(folder)
        if record is not None and isinstance(record.get("order"), int):
            waiting.append((folder.name, record))
    return sorted(waiting, key=lambda item: (item[1]["order"], item[0]))


def claim(run_dir: Path) -> bool:
    """Take a queued run to start it: True for exactly one caller, whichever server it is;
    False when another has it, or the run is no longer queued (stopped, deleted)."""
    run_dir = Path(run_dir)
    if read_status(run_dir).get("state") != QUEUED:
        return False
    try:
        os.close(os.open(run_dir / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:  # FileExistsError: claimed; FileNotFoundError: the folder is gone
        return False
    return True


def mark_started(run_dir: Path, pid: int, epochs: int, device: str) -> None:
    """status.json says "running" with the launched process's pid, unless the process has
    already written its own (it imports torch first: seconds after its launch). A queued
    resume keeps its start time and its earlier resumes."""
    old = read_status(run_dir)
    if old.get("state") == QUEUED:
        write_status(run_dir, status_record("running", old.get("started_at") or timestamp(),
                                            epochs, device, pid=pid,
                                            resumed=old.get("resumed")))


def queue_resume(run_dir: Path) -> None:
    """Queue a run that `check_resumable` passed to be continued by a launcher: status.json
    says "queued" again (keeping its start time and earlier resumes), request.json takes a
    new place in the queue and says "resume", and the old claim goes."""
    run_dir = Path(run_dir)
    request = read_request(run_dir)
    if request is None:
        raise RunError(f"{run_dir.name} was started outside the app (no {REQUEST_FILE}): "
                       f"resume it with python -m {TRAINING_MODULE} --resume {run_dir}")
    (run_dir / CLAIM_FILE).unlink(missing_ok=True)
    write_json(run_dir / REQUEST_FILE, {**request, "order": time.time_ns(),
                                        "queued_at": timestamp(), "resume": True})
    write_status(run_dir, {**read_status(run_dir), "state": QUEUED, "pid": None,
                           "ended_at": None, "error": None})


def check_owner(run_id: str, owner: str | None, user: str, admins: Collection[str],
                action: str) -> None:
    """The one rule for who may stop, resume or delete a run (anyone may see and use every
    finished run): its owner, or an admin. A run that records no owner (started by the CLI,
    or before runs had owners) is an admin's to manage. A RunAccessError says why not."""
    if user in admins or (owner is not None and owner == user):
        return
    if owner is None:
        raise RunAccessError(f"{run_id} records no owner (it was started outside the app or "
                             f"before runs had owners): only an admin can {action} it")
    raise RunAccessError(f"{run_id} belongs to {owner}: only its owner or an admin can "
                         f"{action} it")


def delete_run(runs_dir: str | os.PathLike[str], run_id: Any) -> int:
    """Delete exactly the folder of run `run_id` and return the bytes it held.

    Refused, with the reason, for anything but a run folder directly inside `runs_dir` (a
    path, a link, a folder that holds no run) and for a running run (stop it first)."""
    folder = run_dir(runs_dir, run_id)
    if folder.is_symlink():
        raise RunError(f"{run_id} is a link, not a run folder: nothing was deleted")
    if not folder.is_dir():
        raise RunError(f"no run {run_id!r} in the runs directory")
    if folder.resolve().parent != Path(runs_dir).resolve():
        raise RunError(f"{run_id} is not directly inside the runs directory: nothing was deleted")
    record = read_run(folder)
    if record is None:
        raise RunError(f"{run_id} holds no run: nothing was deleted")
    if record.state == "running":
        raise RunError(f"{run_id} is running: stop it first, then delete it")
    size = folder_size(folder)
    shutil.rmtree(folder)
    return size
