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

from resnext.train import runs
from resnext.train.runs import RunRecord, read_run

from ..shared.assets import checkout_root
from .requests import TrainRequest

FOLLOW_SECONDS = 0.5  # how often a running run's progress.json is read
STEP_HISTORY = 5000  # at most this many step points are kept per run for the live chart
# What a run folder says (`runs.RECORD_STATES`: its status, or "interrupted" when its
# process is gone), plus what only the app knows: waiting in its queue.
STATES = ("queued", *runs.RECORD_STATES)

# The state comes second: it is what a person scans the table for, and a narrow page hides
# the last columns first.
RUN_COLUMNS = ["run", "state", "network", "dataset", "epochs", "test accuracy (last epoch)",
               "best test accuracy", "time", "device", "started (UTC)"]


def run_row(record: RunRecord) -> list[Any]:
    """A record as the runs table's row (RUN_COLUMNS)."""
    accuracy = "–" if record.test_accuracy is None else f"{100 * record.test_accuracy:.1f} %"
    return [record.run_id, record.state, record.network, record.dataset,
            f"{record.epochs_done}/{record.epochs}", accuracy, best_cell(record),
            f"{record.seconds:,.0f} s", record.device,
            record.started_at.replace("T", " ").rstrip("Z")]


def best_cell(record: RunRecord) -> str:
    """The best accuracy and its epoch, e.g. 77.8 % (epoch 183); for a seed-recipe run that
    has not reached its counted epochs yet, after which epoch they start."""
    if record.best_accuracy is not None:
        return f"{100 * record.best_accuracy:.1f} % (epoch {record.best_epoch})"
    return f"– (counted after epoch {record.best_after})" if record.best_after else "–"


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
        with self._lock:
            taken = {job.run_id for queue in self._queues.values() for job in queue}
            taken |= {job.run_id for job in self._running.values()}
        return runs.new_run_id(self.runs_dir, request.config, request.data, taken)

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
        log = open(runs.log_file(run_dir), "ab")  # noqa: SIM115 - the child owns it from here
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
        runs.write_status(run_dir, runs.status_record(
            "failed", runs.timestamp(), job.request.epochs, job.request.device, error=message,
            ended=True, pid=None))

    def _follow(self, job: _Job) -> None:
        """Collect the live step curve from progress.json until the process ends."""
        run_dir = self.runs_dir / job.run_id
        last_step = -1
        while True:
            finished = job.process.poll() is not None
            event = runs.read_progress(run_dir)
            if event is not None and event.get("global_step", -1) > last_step \
                    and event.get("loss") is not None:
                last_step = event["global_step"]
                job.steps.append({key: event.get(key) for key in (
                    "global_step", "steps_total", "epoch", "epochs", "loss", "lr")})
                del job.steps[:-STEP_HISTORY]
            if finished:
                break
            time.sleep(FOLLOW_SECONDS)
        if runs.read_status(run_dir).get("state") in (None, "running"):
            # Killed before it could say so (out of memory, a crash in C code).
            tail = runs.log_tail(run_dir)
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
        record = read_run(self.run_dir(run_id))
        if record is not None and record.state != "running":
            return f"{run_id} is not running (it is {record.state})."
        if job is not None and job.process is not None and job.process.poll() is None:
            os.killpg(job.process.pid, signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        # A run started by an earlier server: its pid is in status.json.
        pid = runs.running_pid(self.run_dir(run_id))
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        return f"{run_id} is not running (it is {record.state if record else 'unknown'})."

    # Reading ------------------------------------------------------------------------------

    def run_dir(self, run_id: Any) -> Path:
        """A run's folder; a ValueError unless `run_id` is a run id (`runs.run_dir`)."""
        return runs.run_dir(self.runs_dir, run_id)

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
        return self.queued() + runs.list_runs(self.runs_dir)

    def usable_runs(self) -> list[str]:
        """Ids of the runs whose weights can be used (`runs.usable`), newest first."""
        return [r.run_id for r in runs.list_runs(self.runs_dir) if runs.usable(r, self.runs_dir)]

    def record(self, run_id: str) -> RunRecord | None:
        position = self.queue_position(run_id)
        if position is not None:
            return next(r for r in self.queued() if r.run_id == run_id)
        return read_run(self.run_dir(run_id))

    def status(self, run_id: str) -> dict[str, Any]:
        """Everything the live view shows of a run, as plain data (also /train_status)."""
        record = self.record(run_id)
        run_dir = self.run_dir(run_id)
        if record is None:
            if not run_dir.exists():
                raise ValueError(f"no run {run_id!r} in {self.runs_dir}")
            # Started, but the child has not written its config yet (importing torch).
            record = RunRecord(run_id, "running", "?", "?", 0, 0, None, 0.0, "?", "")
        progress = runs.read_progress(run_dir) if record.state == "running" else None
        return {"run": record.to_dict(), "queue_position": self.queue_position(run_id),
                "progress": progress, "history": runs.read_metrics(run_dir),
                "steps": list(self._steps.get(run_id, [])),
                "log_tail": runs.log_tail(run_dir) if record.state == "failed" else ""}

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
