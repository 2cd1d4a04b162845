"""`work`: take waiting trials of a study one by one until none waits and none runs.

Any number of workers, on one machine or many, work on one study at once: taking a trial is
atomic (resnext.study.storage), so each (value, seed) is trained exactly once. Before each
take a worker fails the trials whose heartbeat went stale (their worker died) and queues
each again. A worker does not stop while another's trial runs: that trial either finishes
or goes stale, and then this worker takes its retry.

Stopping (`should_stop()` true, or SIGINT/SIGTERM for the CLI) ends the running trial's
training at its next step and queues the trial again at once; a worker killed outright
leaves its trial RUNNING, and the heartbeat makes it stale.

`start` (a worker: storage, study, data) and `step` (one trial) are `work`'s parts, for a
caller that runs one trial at a time (the benchmark; an app that shows each trial's end).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from . import search as searching
from . import storage as stores
from .spec import StudySpec
from .trial import Heartbeat, Worker, run

_POLL_MAX_S = 5.0


def load_spec(study: optuna.Study) -> StudySpec:
    """The spec a study was created with (its user attribute "spec")."""
    if "spec" not in study.user_attrs:
        raise ValueError(f"study {study.study_name!r} was not made by resnext.study (it has no "
                         f"spec); open it with Optuna itself")
    return StudySpec.from_dict(study.user_attrs["spec"])


@dataclass
class Opened:
    """A study as a worker or a report holds it."""

    storage: BaseStorage  # the study's own (cached) storage: take trials through it
    study: optuna.Study
    spec: StudySpec
    url: str  # the storage's URL, password hidden

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.study.study_name)


def open_study(name: str, storage: str | None = None, runs_dir: str | Path = "runs",
               heartbeats: bool = False) -> Opened:
    """The study `name` with its spec; with `heartbeats`, its storage records and checks
    them at the study's own interval and grace period."""
    database = stores.open_storage(storage, runs_dir)
    spec = load_spec(stores.load(database, name))
    if heartbeats:
        database = stores.open_storage(storage, runs_dir, spec.heartbeat, spec.grace)
    # Optuna wraps an RDBStorage in a cache that must see every trial the study touches:
    # pass the wrapper itself, and take trials through it.
    cached = optuna.storages.get_storage(database)
    study = optuna.load_study(study_name=name, storage=cached, sampler=searching.sampler(spec))
    return Opened(cached, study, spec, stores.shown_url(database.url))


def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not should_stop():
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


def start(name: str, storage: str | None = None, runs_dir: str | Path = "runs",
          device: str = "cpu", *, should_stop: Callable[[], bool] | None = None,
          on_event: Callable[[dict[str, Any]], None] | None = None) -> Worker:
    """A worker for study `name`: its storage with heartbeats and its data, built once."""
    from .. import data as datasets

    opened = open_study(name, storage, runs_dir, heartbeats=True)
    try:
        data = datasets.from_spec(opened.spec.data)
    except (ValueError, OSError, datasets.DatasetUnavailableError) as error:
        raise ValueError(f"study {name!r}: its data cannot be built here: {error}") from None
    return Worker(storage=opened.storage, study=opened.study, study_id=opened.study_id,
                  spec=opened.spec, runs_dir=Path(runs_dir), device=device, data=data,
                  should_stop=should_stop or (lambda: False),
                  on_event=on_event or (lambda event: None))


def step(worker: Worker) -> tuple[str, int | None]:
    """One turn of a worker: queue stale trials again, take a waiting trial and run it.
    Returns (outcome, trial number), ("idle", None) when none waits but some run (they may
    yet come back), or ("done", None) when none waits or runs."""
    stores.retry_stale(worker.study)
    trial_id = stores.take_waiting(worker.storage, worker.study_id, heartbeat=True)
    if trial_id is None:
        running = stores.count(worker.storage, worker.study_id, TrialState.RUNNING)
        return ("idle" if running else "done"), None
    number = worker.storage.get_trial(trial_id).number
    with Heartbeat(worker.storage, trial_id, worker.spec.heartbeat):
        return run(worker, trial_id), number


def work(name: str, storage: str | None = None, runs_dir: str | Path = "runs",
         device: str = "cpu", *, should_stop: Callable[[], bool] | None = None,
         on_event: Callable[[dict[str, Any]], None] | None = None,
         max_trials: int | None = None, wait: bool = True) -> dict[str, Any]:
    """Work on study `name` until no trial waits or runs (or `max_trials` were taken, or
    `should_stop()`). `wait=False` returns as soon as none waits, without waiting for other
    workers' running trials. Returns {"outcomes": {outcome: count}, "trials": [numbers]}.
    Run folders go to `runs_dir`; `on_event(dict)` hears of each trial's start and end."""
    worker = start(name, storage, runs_dir, device, should_stop=should_stop,
                   on_event=on_event)
    outcomes: Counter[str] = Counter()
    taken: list[int] = []
    announced = False
    while not worker.should_stop() and (max_trials is None or len(taken) < max_trials):
        outcome, number = step(worker)
        if outcome == "done" or (outcome == "idle" and not wait):
            break
        if outcome == "idle":
            if not announced:
                running = stores.count(worker.storage, worker.study_id, TrialState.RUNNING)
                worker.on_event({"kind": "waiting", "running": running})
                announced = True
            _pause(min(_POLL_MAX_S, worker.spec.heartbeat), worker.should_stop)
            continue
        announced = False
        taken.append(number)
        outcomes[outcome] += 1
    return {"outcomes": dict(outcomes), "trials": taken}
