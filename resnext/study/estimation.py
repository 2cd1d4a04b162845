"""`estimate`: how long a whole study takes, before it runs.

Training: `resnext.train.estimate` per point (a few measured steps turn the exact MAC count
into seconds). Scoring: `resnext.explain.evaluate` timed on a few test images with the
point's untrained network, scaled to the spec's number of images (its cost does not depend
on the weights). Wall time over k workers: the trials dealt longest first to the least
loaded worker (LPT), which is what k workers taking trials off one queue come close to.
"""

from __future__ import annotations

import heapq
import time
from typing import Any

from ..units import duration
from .knobs import config_for
from .planning import check_data
from .spec import StudySpec
from .trial import score

_TIMED_IMAGES = 4


def _networks(spec: StudySpec) -> list[tuple[Any, Any, int]]:
    """(value, config, trials) per point; a search: its costliest network, every trial."""
    if spec.search is None:
        return [(value, config_for(spec.base, spec.knob, value, spec.keep_complexity,
                                   spec.image_size), len(spec.seeds)) for value in spec.values]
    from ..complexity import complexity
    from .knobs import blocks_of
    from .search import space

    widest = [spec.base.replace(cardinality=c, bottleneck_width=high,
                                stage_blocks=blocks_of(layout))
              for (c, layout), (_, high) in space(spec).items()]
    costliest = max(widest, key=lambda cfg: complexity(cfg, spec.image_size).macs)
    return [("at most", costliest, spec.search.trials)]


def _scoring_seconds(cfg: Any, data: Any, spec: StudySpec) -> float:
    if not spec.methods or getattr(data.test, "masks", None) is None:
        return 0.0
    import torch

    from ..model import build_model

    model = build_model(cfg, generator=torch.Generator().manual_seed(0)).eval()
    timed = min(_TIMED_IMAGES, spec.n_images, len(data.test))
    began = time.perf_counter()
    score(model, data, spec.methods, timed)
    return (time.perf_counter() - began) * min(spec.n_images, len(data.test)) / timed


def wall_seconds(durations: list[float], workers: int) -> float:
    """Longest-first dealing of the trials to `workers` queues: the longest queue."""
    loads = [0.0] * max(1, workers)
    for seconds in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + seconds)
    return max(loads)


def estimate(spec: StudySpec, device: str = "cpu", workers: int = 1) -> dict[str, Any]:
    """{"points": [{"value", "train_seconds", "score_seconds", "trial_seconds",
    "peak_bytes", "trials"}], "trials", "total_seconds" (one worker), "wall_seconds" (with
    `workers`), "phrase"} for the study `spec` on `device`."""
    from ..train import estimate as estimate_training

    data = check_data(spec)
    points, durations = [], []
    for value, cfg, trials in _networks(spec):
        training = estimate_training(cfg, data, spec.epochs, spec.batch_size, device)
        scoring = _scoring_seconds(cfg, data, spec)
        seconds = training.seconds + scoring
        points.append({"value": value, "train_seconds": training.seconds,
                       "score_seconds": scoring, "trial_seconds": seconds,
                       "peak_bytes": training.peak_bytes, "trials": trials})
        durations += [seconds] * trials
    wall = wall_seconds(durations, workers)
    return {"points": points, "trials": len(durations), "total_seconds": sum(durations),
            "wall_seconds": wall, "workers": workers,
            "phrase": f"{len(durations)} trials, about {duration(wall)} with {workers} "
                      f"worker{'s' if workers != 1 else ''}"}
