"""Search beside grids: NSGA-II (Deb et al. 2002; `optuna.samplers.NSGAIISampler`) over C,
d and blocks per stage within a MAC budget, with test accuracy and one attribution metric as
the two objectives, and the Pareto front of what it trained.

Every sample lies within the budget by construction: the sampler picks C and a blocks
layout (categorical) and a width share w in [0, 1], and d = d_min + round(w (d_max - d_min))
where d_max is the widest d whose network fits the budget for that C and layout (cost grows
with d, so a bisection over exact `resnext.complexity` counts finds it). A (C, layout) pair
that does not fit even at the narrowest d is pruned without training. A sample equal to a
network already trained is not trained again: it takes that trial's results ("same_as").
A search trains each network once, at the spec's first seed: it explores; a grid over
seeds on the front's networks then says which differences hold.
"""

from __future__ import annotations

from typing import Any

import optuna

from ..config import ResNeXtConfig
from .knobs import blocks_of, largest_width, width_range
from .spec import StudySpec


def layouts(spec: StudySpec) -> tuple[str, ...]:
    assert spec.search is not None
    return spec.search.blocks or (",".join(map(str, spec.base.stage_blocks)),)


def space(spec: StudySpec) -> dict[tuple[int, str], tuple[int, int]]:
    """(C, layout) -> (d_min, d_max) of every pair that fits the MAC budget."""
    assert spec.search is not None
    fits: dict[tuple[int, str], tuple[int, int]] = {}
    cheapest = None
    for cardinality in spec.search.cardinalities:
        for layout in layouts(spec):
            try:
                shaped = spec.base.replace(stage_blocks=blocks_of(layout))
                narrowest, _ = width_range(shaped, cardinality)
                cheapest_here = _macs(shaped.replace(cardinality=cardinality,
                                                     bottleneck_width=narrowest), spec)
            except ValueError as error:
                raise ValueError(f"--cardinalities/--blocks: C = {cardinality} with blocks "
                                 f"{layout} gives no valid network: {error}") from None
            cheapest = cheapest_here if cheapest is None else min(cheapest, cheapest_here)
            widest = largest_width(shaped, cardinality, spec.search.budget_macs,
                                   spec.image_size, "macs")
            if widest is not None:
                fits[(cardinality, layout)] = (narrowest, widest)
    if not fits:
        raise ValueError(f"--budget-macs {spec.search.budget_macs:,}: no network fits; the "
                         f"cheapest of the search space costs {cheapest:,} MACs")
    return fits


def _macs(cfg: ResNeXtConfig, spec: StudySpec) -> int:
    from ..complexity import complexity

    return complexity(cfg, spec.image_size).macs


def suggest(trial: optuna.Trial, spec: StudySpec) -> ResNeXtConfig:
    """The trial's network, sampled by the study's sampler (raises TrialPruned for a pair
    over the budget at every d)."""
    assert spec.search is not None
    cardinality = trial.suggest_categorical("cardinality", list(spec.search.cardinalities))
    layout = trial.suggest_categorical("blocks", list(layouts(spec)))
    share = trial.suggest_float("width", 0.0, 1.0)
    fits = space(spec)
    if (cardinality, layout) not in fits:
        raise optuna.TrialPruned(f"C = {cardinality} with blocks {layout} costs more than "
                                 f"{spec.search.budget_macs:,} MACs at every d")
    narrowest, widest = fits[(cardinality, layout)]
    width = narrowest + round(share * (widest - narrowest))
    return spec.base.replace(cardinality=cardinality, bottleneck_width=width,
                             stage_blocks=blocks_of(layout))


def same_as(worker: Any, cfg: ResNeXtConfig) -> optuna.trial.FrozenTrial | None:
    """A finished trial (trained, not itself a copy) of the same network, or None."""
    wanted = cfg.to_dict()
    for trial in worker.study.get_trials(deepcopy=False,
                                         states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.user_attrs.get("config") == wanted and "same_as" not in trial.user_attrs:
            return trial
    return None


def directions(spec: StudySpec) -> list[str]:
    """Optuna's directions: accuracy up; for a search, the metric its own way."""
    if spec.search is None:
        return ["maximize"]
    from ..explain.names import HIGHER_IS_BETTER

    return ["maximize", "maximize" if HIGHER_IS_BETTER[spec.search.metric] else "minimize"]


def sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """NSGA-II for a search; for a grid, whose every param is fixed when it is queued, a
    sampler that never runs (random: no model to fit before each trial)."""
    if spec.search is None:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.NSGAIISampler(population_size=spec.search.population, seed=seed)


def pareto(study: optuna.Study) -> list[int]:
    """Numbers of the trained trials on the Pareto front (copies of a trained network left
    out: the front lists each network once)."""
    return sorted(trial.number for trial in study.best_trials
                  if "same_as" not in trial.user_attrs)
