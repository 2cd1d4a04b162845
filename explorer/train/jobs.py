"""Training runs as child processes, followed through their run folders.

The runs directory is the single source of truth: a run is a folder that
`python -m resnext.train` writes (config.json, metrics.jsonl, model.safetensors,
status.json, progress.json), so the runs table is a listing of it, a restart of the app
loses nothing finished, and two servers pointed at one directory agree. The app never
trains in its own process: a crash or out-of-memory in training cannot take it down.

One training runs at a time per device; later requests wait in that device's queue (in
memory: a queued run that never started is the one thing a restart forgets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnext.train.runs import (CONFIG_FILE, PROGRESS_FILE, STATUS_FILE, best_after,
                                best_epoch, read_json, read_metrics, status_record, timestamp,
                                write_json)
from resnext.train.runs import STATES as RUN_STATES

from ..shared.assets import checkout_root
from .requests import TrainRequest

LOG_FILE = "train.log"  # the child's stdout and stderr, beside the files it writes
FOLLOW_SECONDS = 0.5  # how often a running run's progress.json is read
STEP_HISTORY = 5000  # at most this many step points are kept per run for the live chart
# What a run folder says, plus what only the app knows: waiting in its queue, or left
# "running" by a process that is gone.
STATES = ("queued", *RUN_STATES, "interrupted")


def pid_alive(pid: Any) -> bool:
    """Whether `pid` is a live (not zombie) process of `python -m resnext.train`."""
    if not isinstance(pid, int) or pid <= 0:
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
    # A finished child not yet reaped is a zombie ('Z'): it trains no more.
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
    return b"resnext.train" in cmdline and state != "Z"


@dataclass
class RunRecord:
    """What the runs table shows of one run folder (or of a queued request)."""

    run_id: str
    state: str
    network: str
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
    best_after: int = 0  # seed-recipe runs count as pytorch-cifar100 does (runs.best_after)

    def row(self) -> list[Any]:
        accuracy = "–" if self.test_accuracy is None else f"{100 * self.test_accuracy:.1f} %"
        return [self.run_id, self.state, self.network, self.dataset,
                f"{self.epochs_done}/{self.epochs}", accuracy, self.best_cell(),
                f"{self.seconds:,.0f} s", self.device,
                self.started_at.replace("T", " ").rstrip("Z")]

    def best_cell(self) -> str:
        """The best accuracy and its epoch, e.g. 77.8 % (epoch 183); for a seed-recipe run
        that has not reached its counted epochs yet, after which epoch they start."""
        if self.best_accuracy is not None:
            return f"{100 * self.best_accuracy:.1f} % (epoch {self.best_epoch})"
        return f"– (counted after epoch {self.best_after})" if self.best_after else "–"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# The state comes second: it is what a person scans the table for, and a narrow page hides
# the last columns first.
RUN_COLUMNS = ["run", "state", "network", "dataset", "epochs", "test accuracy (last epoch)",
               "best test accuracy", "time", "device", "started (UTC)"]


def read_run(run_dir: Path) -> RunRecord | None:
    """The record of a run folder, or None when it holds no run (yet)."""
    config = read_json(run_dir / CONFIG_FILE)
    status = read_json(run_dir / STATUS_FILE) or {}
    if not isinstance(config, dict):
        if status.get("state") == "failed":  # failed before writing its config
            return RunRecord(run_dir.name, "failed", "?", "?", 0, int(status.get("epochs") or 0),
                             None, 0.0, str(status.get("device", "?")),
                             str(status.get("started_at", "")), status.get("error"))
        return None
    history = read_metrics(run_dir)
    state = status.get("state", "running")
    if state == "running" and not pid_alive(status.get("pid")):
        state = "interrupted"  # its process is gone: a restart (or a kill) ended it
    model = config.get("model", {})
    name = _network_name(model)
    data = config.get("data", {})
    after = best_after(config)
    best = best_epoch(history, after) or {}
    return RunRecord(
        run_id=run_dir.name, state=state, network=name, dataset=str(data.get("name", "?")),
        epochs_done=len(history), epochs=int(config.get("epochs", 0)),
        test_accuracy=history[-1]["test_accuracy"] if history else None,
        seconds=sum(row.get("seconds", 0.0) for row in history),
        device=str(config.get("environment", {}).get("device", status.get("device", "?"))),
        started_at=str(status.get("started_at", "")), error=status.get("error"),
        best_accuracy=best.get("test_accuracy"), best_epoch=best.get("epoch"), best_after=after)


def _network_name(model: dict[str, Any]) -> str:
    try:
        from resnext import ResNeXtConfig

        return ResNeXtConfig.from_dict(model).name
    except (ValueError, TypeError):
        return "?"


@dataclass
class _Job:
    run_id: str
    request: TrainRequest
    process: subprocess.Popen | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)


class TrainingManager:
    """Starts, queues, follows and stops training processes for every user of the app.

    Shared by all sessions (one per app), so every method holds `_lock` around its state.
    """

    def __init__(self, runs_dir: Path, data_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, _Job] = {}  # device -> job
        self._steps: dict[str, list[dict[str, Any]]] = {}  # run id -> step points

    # Starting and queueing ------------------------------------------------------------

    def start(self, request: TrainRequest) -> str:
        """Queue `request` on its device; it starts at once when the device is free."""
        run_id = self._new_run_id(request)
        job = _Job(run_id, request)
        with self._lock:
            self._queues.setdefault(request.device, deque()).append(job)
            self._steps[run_id] = job.steps
        self._pump(request.device)
        return run_id

    def _new_run_id(self, request: TrainRequest) -> str:
        cfg = request.config
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        base = f"{stamp}-c{cfg.cardinality}d{cfg.bottleneck_width}-{cfg.depth}-{request.data}"
        base = base.replace(":", "-").replace("/", "-")
        with self._lock:
            taken = {job.run_id for queue in self._queues.values() for job in queue}
            taken |= {job.run_id for job in self._running.values()}
        run_id, n = base, 1
        while run_id in taken or (self.runs_dir / run_id).exists():
            n += 1
            run_id = f"{base}-{n}"
        return run_id

    def _pump(self, device: str) -> None:
        """Start the next queued job of `device` if none is running there."""
        with self._lock:
            if device in self._running or not self._queues.get(device):
                return
            job = self._queues[device].popleft()
            self._running[device] = job
        try:
            self._launch(job)
        except Exception as error:  # noqa: BLE001 - the app must survive a failed launch
            self._record_failure(job, f"could not start the training process: {error}")
            with self._lock:
                self._running.pop(device, None)
            self._pump(device)
            return
        threading.Thread(target=self._follow, args=(job,), daemon=True,
                         name=f"train-{job.run_id}").start()

    def _launch(self, job: _Job) -> None:
        run_dir = self.runs_dir / job.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        env = _child_environment()
        log = open(run_dir / LOG_FILE, "ab")  # noqa: SIM115 - the child owns it from here
        try:
            job.process = subprocess.Popen(
                [sys.executable, "-m", "resnext.train", *job.request.argv(
                    run_dir.resolve(), self.data_dir.resolve())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                # Its own session: a signal to the app (Ctrl-C) does not reach it, and a
                # Stop signals the training and nothing else.
                start_new_session=True, preexec_fn=_lower_priority)
        finally:
            log.close()

    def _record_failure(self, job: _Job, message: str) -> None:
        run_dir = self.runs_dir / job.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / STATUS_FILE, status_record(
            "failed", timestamp(), job.request.epochs, job.request.device, error=message,
            ended=True, pid=None))

    def _follow(self, job: _Job) -> None:
        """Collect the live step curve from progress.json until the process ends."""
        run_dir = self.runs_dir / job.run_id
        last_step = -1
        while True:
            finished = job.process.poll() is not None
            event = read_json(run_dir / PROGRESS_FILE)
            if isinstance(event, dict) and event.get("global_step", -1) > last_step \
                    and event.get("loss") is not None:
                last_step = event["global_step"]
                job.steps.append({key: event.get(key) for key in (
                    "global_step", "steps_total", "epoch", "epochs", "loss", "lr")})
                del job.steps[:-STEP_HISTORY]
            if finished:
                break
            time.sleep(FOLLOW_SECONDS)
        status = read_json(run_dir / STATUS_FILE)
        if not isinstance(status, dict) or status.get("state") == "running":
            # Killed before it could say so (out of memory, a crash in C code).
            tail = _log_tail(run_dir)
            self._record_failure(job, f"the training process ended with code "
                                      f"{job.process.returncode}" + (f": {tail}" if tail else ""))
        with self._lock:
            self._running.pop(job.request.device, None)
        self._pump(job.request.device)

    # Stopping ---------------------------------------------------------------------------

    def stop(self, run_id: str) -> str:
        """Stop a run now: a queued one is dropped; a running one gets SIGTERM and keeps
        its last whole epoch (the engine checks for it at every step)."""
        with self._lock:
            for queue in self._queues.values():
                for job in list(queue):
                    if job.run_id == run_id:
                        queue.remove(job)
                        return f"Removed {run_id} from the queue; it had not started."
            job = next((j for j in self._running.values() if j.run_id == run_id), None)
        record = read_run(self._run_dir(run_id))
        if record is not None and record.state != "running":
            return f"{run_id} is not running (it is {record.state})."
        if job is not None and job.process is not None and job.process.poll() is None:
            os.killpg(job.process.pid, signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        # A run started by an earlier server: its pid is in status.json.
        status = read_json(self._run_dir(run_id) / STATUS_FILE) or {}
        if status.get("state") == "running" and pid_alive(status.get("pid")):
            os.kill(status["pid"], signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        return f"{run_id} is not running (it is {record.state if record else 'unknown'})."

    # Reading ------------------------------------------------------------------------------

    def _run_dir(self, run_id: str) -> Path:
        """A run's folder; the id must name a folder directly in the runs directory."""
        if not isinstance(run_id, str) or not run_id or Path(run_id).name != run_id \
                or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.runs_dir / run_id

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next to start on its device, 2 after it, ...; None when not queued."""
        with self._lock:
            for queue in self._queues.values():
                for index, job in enumerate(queue):
                    if job.run_id == run_id:
                        return index + 1
        return None

    def queued(self) -> list[RunRecord]:
        with self._lock:
            jobs = [job for queue in self._queues.values() for job in queue]
        return [RunRecord(job.run_id, "queued", job.request.config.name, job.request.data, 0,
                          job.request.epochs, None, 0.0, job.request.device, "") for job in jobs]

    def runs(self) -> list[RunRecord]:
        """Every run: queued ones first, then the runs directory, newest first."""
        records = self.queued()
        if self.runs_dir.is_dir():
            folders = sorted((p for p in self.runs_dir.iterdir() if p.is_dir()),
                             key=lambda p: p.name, reverse=True)
            records += [r for r in (read_run(p) for p in folders) if r is not None]
        return records

    def record(self, run_id: str) -> RunRecord | None:
        position = self.queue_position(run_id)
        if position is not None:
            return next(r for r in self.queued() if r.run_id == run_id)
        return read_run(self._run_dir(run_id))

    def status(self, run_id: str) -> dict[str, Any]:
        """Everything the live view shows of a run, as plain data (also /train_status)."""
        record = self.record(run_id)
        if record is None:
            run_dir = self._run_dir(run_id)
            if not run_dir.exists():
                raise ValueError(f"no run {run_id!r} in {self.runs_dir}")
            # Started, but the child has not written its config yet (importing torch).
            record = RunRecord(run_id, "running", "?", "?", 0, 0, None, 0.0, "?", "")
        run_dir = self.runs_dir / run_id
        progress = read_json(run_dir / PROGRESS_FILE) if record.state == "running" else None
        return {"run": record.to_dict(), "queue_position": self.queue_position(run_id),
                "progress": progress, "history": read_metrics(run_dir),
                "steps": list(self._steps.get(run_id, [])),
                "log_tail": _log_tail(run_dir) if record.state == "failed" else ""}

    def active_run(self) -> str | None:
        """The newest run still queued or running (what a reloaded page re-attaches to)."""
        for record in self.runs():
            if record.state in ("queued", "running"):
                return record.run_id
        return None

    def busy_devices(self) -> dict[str, str]:
        with self._lock:
            return {device: job.run_id for device, job in self._running.items()}


# Niceness of a training process: it takes every core it can, and the app's own requests
# (a slider move is a few ms of arithmetic) must still get the CPU at once.
TRAINING_NICENESS = 10


def _child_environment() -> dict[str, str]:
    """The training child's environment: ours, plus the checkout on PYTHONPATH when the app
    runs from one (the child must import the same `resnext`, whatever its working folder);
    an installed package is on the interpreter's own path already."""
    root = checkout_root()
    if root is None:
        return dict(os.environ)
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths).rstrip(os.pathsep)}


def _lower_priority() -> None:  # runs in the child between fork and exec
    try:
        os.nice(TRAINING_NICENESS)
    except OSError:
        pass


def _log_tail(run_dir: Path, lines: int = 3) -> str:
    try:
        text = (run_dir / LOG_FILE).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " / ".join(kept)[-600:]
