"""One trial of a study: an ordinary run (`resnext.train.fit` into `<runs>/<run id>`), then
its test split scored by `resnext.explain.evaluate`, the results told to Optuna.

The run id (the run folder's name, `<study>-<value>-s<seed>-<6 hex>`) is the trial's user
attribute "run_id": the run is listed by the app's runs table and can be loaded, evaluated
and resumed like any other; the trial keeps a copy of its numbers (accuracy, metrics per
method, MACs, params, seconds) so that `show` needs no run folder, on any machine.
"""

from __future__ import annotations

import os
import platform
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from ..complexity import complexity
from ..config import ResNeXtConfig
from . import search as searching
from . import storage as stores
from .knobs import config_for, value_label
from .spec import StudySpec

Events = Callable[[dict[str, Any]], None]


@dataclass
class Worker:
    """What a worker holds from trial to trial."""

    storage: BaseStorage
    study: optuna.Study
    study_id: int
    spec: StudySpec
    runs_dir: Path
    device: str
    data: Any  # the study's DatasetPair, built once
    should_stop: Callable[[], bool] = lambda: False
    on_event: Events = lambda event: None
    identity: dict[str, Any] = field(default_factory=lambda: {
        "host": platform.node(), "pid": os.getpid()})


class Heartbeat:
    """Records the trial's heartbeat every `interval` seconds in a daemon thread, so
    a worker that dies stops beating and its trial goes stale; a failed write is retried at
    the next beat rather than ending the trial."""

    def __init__(self, storage: BaseStorage, trial_id: int, interval: int) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="study-heartbeat")

    def _beat(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a busy or unreachable database: next beat
                pass

    def __enter__(self) -> "Heartbeat":
        self.thread.start()  # the take wrote the first beat (resnext.study.storage)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.thread.join()


def _choose(worker: Worker, trial: optuna.Trial) -> tuple[ResNeXtConfig, int, str]:
    """(config, seed, run-folder label) of the trial: its grid point, or a search sample."""
    spec = worker.spec
    if spec.search is not None:
        cfg = searching.suggest(trial, spec)
        label = f"C{cfg.cardinality}d{cfg.bottleneck_width}-depth{cfg.depth}"
        return cfg, spec.seeds[0], label
    value = trial.suggest_categorical("value", list(spec.values))
    seed = trial.suggest_categorical("seed", list(spec.seeds))
    cfg = config_for(spec.base, spec.knob, value, spec.keep_complexity, spec.image_size)
    return cfg, seed, value_label(spec.knob, value)


def _fit(worker: Worker, cfg: ResNeXtConfig, seed: int, run_dir: Path,
         stopped: Callable[[], bool]):
    from ..train import fit

    spec = worker.spec
    return fit(cfg, worker.data, epochs=spec.epochs, batch_size=spec.batch_size,
               recipe=spec.recipe, lr=spec.lr, device=worker.device, seed=seed,
               out_dir=run_dir, should_stop=stopped)


def score(model: Any, data: Any, methods: tuple[str, ...], n_images: int
          ) -> dict[str, dict[str, float]]:
    """Each method's mean of each metric over the first `n_images` test images ({} when the
    test split has no object masks: accuracy alone). Scored on the CPU, where
    `resnext.explain.evaluate` keeps its images."""
    if not methods or getattr(data.test, "masks", None) is None:
        return {}
    from ..explain.evaluation import evaluate

    result = evaluate(model.to("cpu"), data.test, list(methods), n_images, mean=data.mean,
                      std=data.std, keep_maps=False)
    report = result.to_json()  # every metric the split allows (distractor share included)
    return {row["method"]: {m: row[m] for m in report["metrics"] if row.get(m) is not None}
            for row in report["rows"]}


def _results(worker: Worker, cfg: ResNeXtConfig, fitted: Any, train_s: float
             ) -> tuple[dict[str, Any], list[float]]:
    spec = worker.spec
    began = time.perf_counter()
    metrics = score(fitted.model, worker.data, spec.methods, spec.n_images)
    eval_s = time.perf_counter() - began
    report = complexity(cfg, worker.data.image_size)
    attrs = {"accuracy": fitted.test_accuracy, "metrics": metrics, "macs": report.macs,
             "params": report.params, "train_seconds": train_s, "eval_seconds": eval_s,
             "seconds": train_s + eval_s}
    values = [fitted.test_accuracy]
    if spec.search is not None:
        values.append(metrics[spec.search.method][spec.search.metric])
    return attrs, values


def _copied(worker: Worker, trial: optuna.Trial, cfg: ResNeXtConfig) -> bool:
    """A search sample equal to a network already trained takes its results (True)."""
    same = searching.same_as(worker, cfg) if worker.spec.search is not None else None
    if same is None:
        return False
    for key in ("run_id", "accuracy", "metrics", "macs", "params", "config"):
        trial.set_user_attr(key, same.user_attrs.get(key))
    trial.set_user_attr("same_as", same.number)
    worker.study.tell(trial, same.values)
    worker.on_event({"kind": "copied", "trial": trial.number, "same_as": same.number})
    return True


def _failed(worker: Worker, trial: optuna.Trial, run_id: str, message: str) -> str:
    try:
        trial.set_user_attr("error", message)
        worker.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # failed as stale by another worker meanwhile (and queued again)
    worker.on_event({"kind": "failed", "trial": trial.number, "run_id": run_id,
                     "error": message})
    return "failed"


def run(worker: Worker, trial_id: int) -> str:
    """Train and score one RUNNING trial; returns "complete", "failed", "stopped" (given back
    to the queue), "pruned" (a search sample over the budget) or "lost" (another worker
    took this attempt for dead meanwhile)."""
    from ..train.engine import describe_error

    study, spec = worker.study, worker.spec
    trial = optuna.Trial(study, trial_id)
    try:
        cfg, seed, label = _choose(worker, trial)
    except optuna.TrialPruned as reason:
        trial.set_user_attr("error", str(reason))
        study.tell(trial, state=TrialState.PRUNED)
        worker.on_event({"kind": "pruned", "trial": trial.number, "reason": str(reason)})
        return "pruned"
    if _copied(worker, trial, cfg):
        return "complete"
    run_id = f"{spec.name}-{label}-s{seed}-{uuid.uuid4().hex[:6]}"
    trial.set_user_attr("run_id", run_id)
    trial.set_user_attr("config", cfg.to_dict())
    trial.set_user_attr("worker", {**worker.identity, "device": worker.device})
    worker.on_event({"kind": "start", "trial": trial.number, "run_id": run_id,
                     "params": dict(trial.params)})
    began = time.perf_counter()
    try:
        fitted = _fit(worker, cfg, seed, worker.runs_dir / run_id, worker.should_stop)
        if fitted.stopped:
            stores.give_back(worker.storage, study, trial_id, "the worker was stopped")
            return "stopped"
        attrs, values = _results(worker, cfg, fitted, time.perf_counter() - began)
    except Exception as error:  # noqa: BLE001 - the trial fails, the worker goes on
        return _failed(worker, trial, run_id, describe_error(error))
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        told = study.tell(trial, values, skip_if_finished=True)
        complete = told.state == TrialState.COMPLETE and told.values == values
    except optuna.exceptions.UpdateFinishedTrialError:
        complete = False  # failed as stale by another worker (and queued again) meanwhile
    outcome = "complete" if complete else "lost"
    worker.on_event({"kind": outcome, "trial": trial.number, "run_id": run_id,
                     "accuracy": attrs["accuracy"], "seconds": attrs["seconds"]})
    return outcome
