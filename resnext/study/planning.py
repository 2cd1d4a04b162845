"""`plan`: what a spec will train, checked before anything runs; `create`: write the study
into its storage with every trial queued.

A grid queues each (value, seed) once, as a WAITING trial whose params are fixed
(`Study.enqueue_trial`), seed by seed so that every point has a first result early. A search
queues `trials` empty slots, whose params the NSGA-II sampler fills when a worker takes one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..complexity import complexity
from . import search as searching
from . import storage as stores
from .knobs import KEEP_BY, config_for
from .spec import OWNER_ATTR, RECOMMENDED_SEEDS, StudySpec


def _cost(cfg: Any, spec: StudySpec) -> dict[str, Any]:
    report, base = complexity(cfg, spec.image_size), complexity(spec.base, spec.image_size)
    return {"config": cfg.to_dict(), "name": cfg.name, "macs": report.macs,
            "params": report.params, "macs_ratio": report.macs / base.macs,
            "params_ratio": report.params / base.params}


def plan(spec: StudySpec) -> dict[str, Any]:
    """Every point's network and cost (ratios to the base network) and notes for the user;
    a ValueError names the value that gives no valid network. Builds no data, trains nothing."""
    from ..train.recipes import RECIPE_NAMES

    if spec.recipe not in RECIPE_NAMES:
        raise ValueError(f"--recipe must be one of {', '.join(RECIPE_NAMES)}, "
                         f"got {spec.recipe!r}")
    notes = []
    if spec.few_seeds:
        notes.append(f"{len(spec.seeds)} seed(s): intervals need 2 and are wide below "
                     f"{RECOMMENDED_SEEDS} (t(0.975, 1) = 12.7)")
    if spec.search is not None:
        fits = searching.space(spec)
        pairs = [{"cardinality": c, "blocks": layout, "d_min": low, "d_max": high}
                 for (c, layout), (low, high) in sorted(fits.items())]
        return {"mode": "search", "trials": spec.search.trials, "space": pairs,
                "budget_macs": spec.search.budget_macs, "notes": notes}
    points = []
    for value in spec.values:
        cfg = config_for(spec.base, spec.knob, value, spec.keep_complexity, spec.image_size)
        points.append({"value": value, **_cost(cfg, spec)})
    if spec.keep_complexity:
        notes.append(f"keep complexity: each C's d keeps the network's {KEEP_BY} closest "
                     f"to the base network's (the paper's Table 2 rule)")
    return {"mode": "grid", "trials": len(spec.values) * len(spec.seeds), "points": points,
            "notes": notes}


def check_data(spec: StudySpec) -> Any:
    """Build the study's data once: it exists here, fits the base network's classes, and
    has object masks when methods are to be scored."""
    from .. import data as datasets

    try:
        data = datasets.from_spec(spec.data)
    except (ValueError, OSError, datasets.DatasetUnavailableError) as error:
        raise ValueError(f"--data: {error}") from None
    if spec.base.num_classes != len(data.classes):
        raise ValueError(f"the base network has num_classes={spec.base.num_classes} but "
                         f"{data.name} has {len(data.classes)} classes; set num_classes="
                         f"{len(data.classes)}")
    if spec.methods and getattr(data.test, "masks", None) is None:
        raise ValueError(f"--methods: {data.name} has no object masks to score attributions "
                         f"against; use --methods '' for accuracy alone, or a shapes dataset")
    return data


def create(spec: StudySpec, storage: str | None = None, runs_dir: str | Path = "runs",
           owner: str | None = None) -> dict[str, Any]:
    """Write the study and queue its trials; returns {"name", "storage", "trials", "plan"}.
    A name already taken in the storage is refused. `owner`: who created it (the app's
    user; None from the CLI), the study's user attribute "owner": who may stop its workers."""
    planned = plan(spec)
    check_data(spec)
    store = stores.open_storage(storage, runs_dir)
    study = stores.create(store, spec.name, searching.directions(spec))
    study.set_user_attr("spec", spec.to_dict())
    study.set_user_attr(OWNER_ATTR, owner)
    if spec.search is None:
        for params in spec.grid():
            study.enqueue_trial(params)
    else:
        for slot in range(spec.search.trials):
            study.enqueue_trial({}, user_attrs={"slot": slot})
    return {"name": spec.name, "storage": stores.shown_url(store.url),
            "trials": planned["trials"], "plan": planned}
