"""Training runs as child processes, followed through their run folders.

The runs directory is the single source of truth: a run is a folder that
`python -m resnext.train` writes (config.json, metrics.jsonl, model.safetensors,
status.json, progress.json), so the runs table is a listing of it, a restart of the app
loses nothing finished, and two servers pointed at one directory agree. The app never
trains in its own process: a crash or out-of-memory in training cannot take it down.

One training runs at a time per device; later requests wait in that device's queue. A
queued run is a folder from the moment it is accepted (`runs.queue_run`: its owner and its
request), so a restarted server takes the queue over in order, and waits for the runs an
earlier server left training. Each user may have a few trainings queued or running, each
device a bounded number (`QueueLimits`); who may stop or delete a run is `runs.check_owner`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

from resnext.train import runs
from resnext.train.runs import RunRecord, read_run
from resnext.units import byte_size
from resnext.validation import whole_number

from ..accounts import LOCAL_USER
from ..shared.children import start_child
from .requests import TrainRequest

FOLLOW_SECONDS = 0.5  # how often a running run's progress.json is read
STEP_HISTORY = 5000  # at most this many step points are kept per run for the live chart
ENDING_GRACE_S = 30  # how long a Resume waits for a stopped run's process to close
# What a run folder says (`runs.RECORD_STATES`: queued, its status, or "interrupted" when
# its process is gone).
STATES = runs.RECORD_STATES

# The state comes second: it is what a person scans the table for, and a narrow page hides
# the last columns first. Owner and size next: whose run it is and what deleting it frees.
RUN_COLUMNS = ["run", "state", "owner", "size", "network", "dataset", "epochs",
               "test accuracy (last epoch)", "best test accuracy", "time", "device",
               "started (UTC)"]


def run_row(record: RunRecord) -> list[Any]:
    """A record as the runs table's row (RUN_COLUMNS)."""
    accuracy = "–" if record.test_accuracy is None else f"{100 * record.test_accuracy:.1f} %"
    return [record.run_id, state_cell(record), record.owner or "–", byte_size(record.size_bytes),
            record.network, record.dataset, f"{record.epochs_done}/{record.epochs}", accuracy,
            best_cell(record), f"{record.seconds:,.0f} s", record.device,
            record.started_at.replace("T", " ").rstrip("Z")]


def state_cell(record: RunRecord) -> str:
    """The state, marked when the run was continued: "finished (resumed)"."""
    return record.state + (runs.RESUMED_MARK if record.resumed else "")


def best_cell(record: RunRecord) -> str:
    """The best accuracy and its epoch, e.g. 77.8 % (epoch 183); for a seed-recipe run that
    has not reached its counted epochs yet, after which epoch they start."""
    if record.best_accuracy is not None:
        return f"{100 * record.best_accuracy:.1f} % (epoch {record.best_epoch})"
    return f"– (counted after epoch {record.best_after})" if record.best_after else "–"


@dataclass(frozen=True)
class QueueLimits:
    """How many trainings a server holds queued or running at once (issue 20: one client
    queued 200 runs in 20 s). A lab's defaults: three per user, so one person cannot fill a
    GPU for weeks; ten per device, so a full queue is still a day or two of work, not a
    month. `python -m explorer --max-runs-per-user N --max-queue-per-device N`."""

    per_user: int = 3
    per_device: int = 10

    def __post_init__(self) -> None:
        whole_number("--max-runs-per-user", self.per_user, 1, 1000)
        whole_number("--max-queue-per-device", self.per_device, 1, 10_000)


class QueueFull(ValueError):
    """A training refused by a limit (`QueueLimits`): nothing was queued."""


@dataclass
class _Job:
    run_id: str
    request: TrainRequest
    owner: str
    process: subprocess.Popen | None = None
    pid: int | None = None  # a run an earlier server started, adopted by this one
    resume: bool = False  # continue the run from its last finished epoch (`--resume`)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return runs.pid_alive(self.pid)


class TrainingManager:
    """Starts, queues, follows and stops training processes for every user of the app.

    Shared by all sessions (one per app), so every method holds `_lock` around its state.
    `admins` may stop and delete every run; an app without accounts has one user,
    LOCAL_USER, who is its admin.
    """

    def __init__(self, runs_dir: Path, data_dir: Path, limits: QueueLimits = QueueLimits(),
                 admins: Collection[str] = (LOCAL_USER,)) -> None:
        self.runs_dir = Path(runs_dir)
        self.data_dir = Path(data_dir)
        self.limits = limits
        self.admins = frozenset(admins)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, _Job] = {}  # device -> job
        self._steps: dict[str, list[dict[str, Any]]] = {}  # run id -> step points
        self._take_over()

    # Starting and queueing ------------------------------------------------------------

    def start(self, request: TrainRequest, user: str = LOCAL_USER) -> str:
        """Queue `request` for `user` on its device (on disk at once); it starts when the
        device is free. A QueueFull, and nothing queued, when a limit is reached."""
        with self._lock:
            self._check_limits(request.device, user)
            taken = {job.run_id for job in self._jobs()}
            run_id = runs.new_run_id(self.runs_dir, request.config, request.data, taken)
            runs.queue_run(self.runs_dir, run_id, user, request.to_dict(), request.epochs,
                           request.device)
            job = _Job(run_id, request, user)
            self._queues.setdefault(request.device, deque()).append(job)
            self._steps[run_id] = job.steps
        self._pump(request.device)
        return run_id

    def resume(self, run_id: str, user: str = LOCAL_USER) -> str:
        """Queue the continuation of a stopped, interrupted or failed run on its device,
        counted in the same bounds as a start (`QueueLimits`, against the run's owner).
        Only its owner or an admin may (`authorize`); `runs.check_resumable` says why a
        run cannot be continued."""
        self.authorize(run_id, user, "resume")
        folder = self.run_dir(run_id)
        record = runs.check_resumable(folder)
        asked = runs.read_request(folder)
        if asked is None:
            raise runs.RunError(f"{run_id} was started outside the app: resume it with "
                                f"python -m resnext.train --resume {folder}")
        request = TrainRequest.from_dict(asked["request"])
        owner = runs.owner(folder) or user
        self._wait_for_its_process(run_id)
        with self._lock:
            if any(job.run_id == run_id for job in self._jobs()):
                raise runs.RunError(f"{run_id} is already queued or running")
            self._check_limits(request.device, owner)
            runs.queue_resume(folder)
            job = _Job(run_id, request, owner, resume=True)
            self._queues.setdefault(request.device, deque()).append(job)
            self._steps[run_id] = job.steps
        self._pump(request.device)
        return (f"Resuming {run_id} from epoch {record.epochs_done} of {record.epochs} "
                f"on {request.device}.")

    def _wait_for_its_process(self, run_id: str) -> None:
        """A run whose status says it stopped may still have its process closing (it writes
        the status, then exits), and that job holds its device and its owner's slot until
        followed out: a Resume clicked the moment "stopped" shows waits for that, briefly,
        instead of being refused as running."""
        deadline = time.monotonic() + ENDING_GRACE_S
        while time.monotonic() < deadline:
            with self._lock:
                if not any(job.run_id == run_id for job in self._running.values()):
                    return
            time.sleep(FOLLOW_SECONDS / 4)

    def _jobs(self) -> list[_Job]:
        """Every queued or running job (hold `_lock`)."""
        return [*self._running.values(), *(job for queue in self._queues.values()
                                           for job in queue)]

    def _check_limits(self, device: str, user: str) -> None:
        """Refuse (QueueFull) a training over `limits` (hold `_lock`), naming the limit and
        what the user has queued or running."""
        jobs = self._jobs()
        mine = [job for job in jobs if job.owner == user]
        listed = "; ".join(f"{job.run_id} ({self._where(job)})" for job in mine) or "none"
        if len(mine) >= self.limits.per_user:
            raise QueueFull(
                f"{user} already has {len(mine)} trainings queued or running, the most one "
                f"user may have at once ({self.limits.per_user}, the server's "
                f"--max-runs-per-user): {listed}. Stop one or wait for one to end.")
        on_device = sum(job.request.device == device for job in jobs)
        if on_device >= self.limits.per_device:
            raise QueueFull(
                f"the queue of {device} is full: {on_device} trainings are queued or running "
                f"there, the most one device takes ({self.limits.per_device}, the server's "
                f"--max-queue-per-device). Yours: {listed}. Try again when one has ended.")

    def _where(self, job: _Job) -> str:
        device = job.request.device
        if self._running.get(device) is job:
            return f"running on {device}"
        position = list(self._queues.get(device, ())).index(job) + 1
        return f"queued, number {position} on {device}"

    def _pump(self, device: str) -> None:
        """Start the next queued job of `device` if none is running there."""
        while True:
            with self._lock:
                if device in self._running or not self._queues.get(device):
                    return
                job = self._queues[device].popleft()
                # Gone meanwhile (stopped, deleted, or started by another server sharing
                # this runs directory): the next one's turn.
                if not runs.claim(self.run_dir(job.run_id)):
                    continue
                self._running[device] = job
            try:
                self._launch(job)
            except Exception as error:  # noqa: BLE001 - the app must survive a failed launch
                self._record_failure(job, f"could not start the training process: {error}")
                with self._lock:
                    self._running.pop(device, None)
                continue
            self._follow_in_background(job)
            return

    def _follow_in_background(self, job: _Job) -> None:
        threading.Thread(target=self._follow, args=(job,), daemon=True,
                         name=f"train-{job.run_id}").start()

    def _launch(self, job: _Job) -> None:
        run_dir = self.run_dir(job.run_id)
        job.process = start_child(runs.TRAINING_MODULE, self._argv(job, run_dir),
                                  runs.log_file(run_dir))
        runs.mark_started(run_dir, job.process.pid, job.request.epochs, job.request.device)

    def _argv(self, job: _Job, run_dir: Path) -> list[str]:
        """The training's arguments: the request's, or continuing the run's own."""
        if job.resume:
            return ["--resume", str(run_dir.resolve()), "--device", job.request.device,
                    "--quiet"]
        return job.request.argv(run_dir.resolve(), self.data_dir.resolve())

    def _record_failure(self, job: _Job, message: str) -> None:
        run_dir = self.runs_dir / job.run_id
        if not run_dir.is_dir():
            return  # deleted meanwhile: nothing to report into
        runs.write_status(run_dir, runs.status_record(
            "failed", runs.timestamp(), job.request.epochs, job.request.device, error=message,
            ended=True, pid=None, resumed=runs.read_status(run_dir).get("resumed")))

    def _follow(self, job: _Job) -> None:
        """Collect the live step curve from progress.json until the process ends."""
        run_dir = self.runs_dir / job.run_id
        last_step = -1
        while True:
            finished = not job.alive()
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
        if run_dir.is_dir() and runs.read_status(run_dir).get("state") in (None, "running"):
            # Killed before it could say so (out of memory, a crash in C code).
            tail = runs.log_tail(run_dir)
            code = job.process.returncode if job.process is not None else "unknown"
            self._record_failure(job, f"the training process ended with code {code}"
                                      + (f": {tail}" if tail else ""))
        with self._lock:
            self._running.pop(job.request.device, None)
        self._pump(job.request.device)

    # Taking over a runs directory ---------------------------------------------------------

    def _take_over(self) -> None:
        """What an earlier server left: its runs still training keep their devices busy
        (followed until they end), and its queued runs wait in the order they were queued."""
        for record in runs.list_runs(self.runs_dir):
            if record.state == "running":
                job = self._restored_job(record.run_id)
                if job is not None and job.request.device not in self._running:
                    job.pid = runs.running_pid(self.run_dir(record.run_id))
                    self._running[job.request.device] = job
                    self._steps[job.run_id] = job.steps
                    self._follow_in_background(job)
        for run_id, _ in runs.queued_runs(self.runs_dir):
            job = self._restored_job(run_id)
            if job is not None:
                self._queues.setdefault(job.request.device, deque()).append(job)
                self._steps[run_id] = job.steps
        for device in list(self._queues):
            self._pump(device)

    def _restored_job(self, run_id: str) -> _Job | None:
        """The job of a run this app queued (request.json); None for a run started by the
        CLI. A request that cannot be read back fails its run, with the reason."""
        asked = runs.read_request(self.run_dir(run_id))
        if asked is None:
            return None
        try:
            request = TrainRequest.from_dict(asked["request"])
        except (KeyError, TypeError, ValueError) as error:
            runs.write_status(self.run_dir(run_id), runs.status_record(
                "failed", runs.timestamp(), 0, "?", error=f"its request could not be read "
                f"back after a restart ({error})", ended=True, pid=None))
            return None
        return _Job(run_id, request, runs.owner(self.run_dir(run_id)) or "",
                    resume=bool(asked.get("resume")))

    # Stopping and deleting -----------------------------------------------------------------

    def authorize(self, run_id: str, user: str, action: str) -> None:
        """The one check before stopping, resuming or deleting a run: `runs.check_owner`
        (its owner or an admin), or a RunAccessError that says why; nothing changes."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            raise ValueError(f"no run {run_id!r} in the runs directory")
        runs.check_owner(run_id, runs.owner(folder), user, self.admins, action)

    def _drop_queued(self, run_id: str) -> _Job | None:
        """Take a queued job out of its queue (hold `_lock`); None when it is not queued."""
        for queue in self._queues.values():
            for job in queue:
                if job.run_id == run_id:
                    queue.remove(job)
                    self._steps.pop(run_id, None)
                    return job
        return None

    def stop(self, run_id: str, user: str = LOCAL_USER) -> str:
        """Stop a run now: a queued one is dropped (its folder with it: it holds nothing
        yet); a running one gets SIGTERM and keeps its last whole epoch (the engine checks
        for it at every step). Only its owner or an admin may (`authorize`)."""
        self.authorize(run_id, user, "stop")
        with self._lock:
            dropped = self._drop_queued(run_id)
            job = next((j for j in self._running.values() if j.run_id == run_id), None)
        if dropped is not None:
            runs.delete_run(self.runs_dir, run_id)
            return f"Removed {run_id} from the queue; it had not started."
        record = read_run(self.run_dir(run_id))
        if record is not None and record.state != "running":
            return f"{run_id} is not running (it is {record.state})."
        if job is not None and job.process is not None and job.alive():
            os.killpg(job.process.pid, signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        # A run started by an earlier server: its pid is in status.json.
        pid = runs.running_pid(self.run_dir(run_id))
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            return f"Stopping {run_id}: it keeps its last whole epoch."
        return f"{run_id} is not running (it is {record.state if record else 'unknown'})."

    def delete(self, run_id: str, user: str = LOCAL_USER) -> str:
        """Delete a run's folder (`runs.delete_run`: exactly that folder, never a running
        run); a queued one leaves its queue first. Only its owner or an admin may."""
        self.authorize(run_id, user, "delete")
        with self._lock:
            # Started by this app and not yet ended by its own account (status.json): being
            # launched, or running. A run that has written its end may still be exiting.
            launched = any(job.run_id == run_id for job in self._running.values())
            if launched and runs.read_status(self.run_dir(run_id)).get("state") in (
                    None, runs.QUEUED, "running"):
                raise runs.RunError(f"{run_id} is running: stop it first, then delete it")
            dropped = self._drop_queued(run_id)
        size = runs.delete_run(self.runs_dir, run_id)
        with self._lock:
            self._steps.pop(run_id, None)
        note = "; it was queued and had not started" if dropped is not None else ""
        return f"Deleted {run_id} ({byte_size(size)}){note}."

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

    def runs(self) -> list[RunRecord]:
        """Every run of the runs directory (queued ones included), newest first."""
        return runs.list_runs(self.runs_dir)

    def usable_runs(self) -> list[str]:
        """Ids of the runs whose weights can be used (`runs.usable`), newest first."""
        return [r.run_id for r in runs.list_runs(self.runs_dir) if runs.usable(r, self.runs_dir)]

    def record(self, run_id: str) -> RunRecord | None:
        return read_run(self.run_dir(run_id))

    def status(self, run_id: str) -> dict[str, Any]:
        """Everything the live view shows of a run, as plain data (also /train_status)."""
        record = self.record(run_id)
        run_dir = self.run_dir(run_id)
        if record is None:
            if not run_dir.exists():
                raise ValueError(f"no run {run_id!r} in {self.runs_dir}")
            # Started, but the child has not written its config yet (importing torch).
            record = RunRecord(run_id, "running", "?", "?", 0, 0, None, 0.0, "?", "",
                               owner=runs.owner(run_dir))
        progress = runs.read_progress(run_dir) if record.state == "running" else None
        return {"run": record.to_dict(), "queue_position": self.queue_position(run_id),
                "progress": progress, "history": runs.read_metrics(run_dir),
                "steps": list(self._steps.get(run_id, [])),
                "log_tail": runs.log_tail(run_dir) if record.state == "failed" else ""}

    def active_run(self, user: str = LOCAL_USER) -> str | None:
        """The newest run of `user` still queued or running (what a reloaded page
        re-attaches to); an admin also re-attaches to runs that record no owner."""
        for record in self.runs():
            mine = record.owner == user or (record.owner is None and user in self.admins)
            if mine and record.state in ("queued", "running"):
                return record.run_id
        return None

    def busy_devices(self) -> dict[str, str]:
        with self._lock:
            return {device: job.run_id for device, job in self._running.items()}


