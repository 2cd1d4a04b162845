"""Where a study lives: an Optuna RDB storage, a SQLite file in the runs directory by default
or any SQLAlchemy URL (`postgresql://user@host/db` reaches PostgreSQL through psycopg 3).

Why SQLite and not Optuna's journal file: only `RDBStorage` has heartbeats (Optuna 5.1's
`JournalStorage` is no `BaseHeartbeat`), and a worker killed mid-trial is noticed only by its
heartbeat going stale.

Why every SQLite transaction here begins with BEGIN IMMEDIATE: Optuna takes a waiting trial
by reading its state and then writing RUNNING (`Study._pop_waiting_trial_id` ->
`set_trial_state_values`, which relies on SELECT ... FOR UPDATE). PostgreSQL locks the row;
SQLite ignores FOR UPDATE, and Python's sqlite3 begins a transaction only at the write, so two
processes can both read WAITING and both take the trial (measured here: 20 of 300 trials
taken twice by two processes). BEGIN IMMEDIATE takes SQLite's write lock when the transaction
starts, so read-then-write is atomic (0 of 300), and so is failing a stale trial (else two
workers could both queue its retry). SQLAlchemy's documented recipe for pysqlite.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

DB_FILE = "studies.db"
SQLITE_TIMEOUT_S = 120  # how long a worker waits for SQLite's write lock before failing
# User attributes that belong to one attempt at a trial, not to the trial's params: a retry
# starts without them.
ATTEMPT_ATTRS = ("run_id", "worker", "error", "accuracy", "metrics", "seconds",
                 "train_seconds", "eval_seconds", "macs", "params", "config", "same_as")



def default_url(runs_dir: str | Path = "runs") -> str:
    """sqlite:///<runs dir>/studies.db (absolute, so every process finds the same file)."""
    return f"sqlite:///{(Path(runs_dir).resolve() / DB_FILE).as_posix()}"


def shown_url(url: str) -> str:
    """The URL with any password hidden, for messages and reports."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: say it as given
        return url


class RetryStale(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a heartbeat-stale trial, minus the dead attempt's run and results:
    the new WAITING trial keeps only the params (and the retry history in system attrs)."""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        fresh = copy.deepcopy(trial)
        fresh.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ATTEMPT_ATTRS}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__call__(study, fresh)


def _retry() -> RetryStale:
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryStale()


def _immediate_transactions(storage: RDBStorage) -> None:
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 emits no BEGIN of its own

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners go


def open_storage(url: str | None = None, runs_dir: str | Path = "runs",
                 heartbeat: int | None = None, grace: int | None = None) -> RDBStorage:
    """The study storage at `url` (default: the SQLite file in `runs_dir`); with
    `heartbeat`, running trials record heartbeats and stale ones are queued again."""
    if url is None:
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        url = default_url(runs_dir)
    sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=heartbeat,
                grace_period=grace if heartbeat is not None else None,
                heartbeat_stale_trial_callback=_retry() if heartbeat is not None else None)
    except ImportError as error:
        raise ValueError(f"--storage {shown_url(url)}: no database driver for it "
                         f"({error.__cause__ or error})") from None
    except Exception as error:  # noqa: BLE001 - SQLAlchemy's many connection errors
        raise ValueError(f"--storage {shown_url(url)} could not be opened: "
                         f"{str(error).splitlines()[0]}") from None
    if sqlite:
        _immediate_transactions(storage)
    return storage


def study_names(storage: RDBStorage) -> list[str]:
    return sorted(summary.study_name for summary in optuna.get_all_study_summaries(storage))


def load(storage: RDBStorage, name: str) -> optuna.Study:
    """The study named `name`, or a ValueError that lists the studies the storage holds."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = study_names(storage)
        known = f"; it holds {', '.join(names)}" if names else "; it holds none"
        raise ValueError(f"no study named {name!r} in {shown_url(storage.url)}{known}") from None


def create(storage: RDBStorage, name: str, directions: list[str]) -> optuna.Study:
    try:
        return optuna.create_study(study_name=name, storage=storage, directions=directions)
    except optuna.exceptions.DuplicatedStudyError:
        raise ValueError(f"a study named {name!r} already exists in {shown_url(storage.url)}; "
                         f"choose another name (or `work {name}` to continue it)") from None


def take_waiting(storage: BaseStorage, study_id: int, heartbeat: bool = False) -> int | None:
    """Move one WAITING trial to RUNNING and return its id (None: none waits). Atomic across
    processes (see the module's note): of two workers only one gets a given trial.

    With `heartbeat`, the trial's heartbeat is written before it is taken: Optuna never
    counts a RUNNING trial without a heartbeat as stale, so a worker that died between the
    take and its first beat would leave its trial running for ever, and every other worker
    waiting on it. (A beat on a trial another worker takes is harmless: that worker's own
    beats replace it, and a waiting trial is never stale.)"""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if heartbeat:
                storage.record_heartbeat(trial_id)
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def count(storage: BaseStorage, study_id: int, *states: TrialState) -> int:
    return len(storage.get_all_trials(study_id, deepcopy=False, states=states))


def retry_stale(study: optuna.Study) -> None:
    """Fail the running trials whose heartbeat went stale and queue each again (once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def give_back(storage: BaseStorage, study: optuna.Study, trial_id: int, reason: str) -> None:
    """A trial this worker stops before it ends: FAIL it with the reason and queue it again
    at once, as a stale one would be, instead of waiting for its heartbeat to go stale."""
    try:
        storage.set_trial_user_attr(trial_id, "error", reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # already failed as stale by another worker, which queued it again
    _retry()(study, storage.get_trial(trial_id))
