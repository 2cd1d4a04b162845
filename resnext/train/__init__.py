"""Train any ResNeXtConfig: `fit`, `load_run`, `estimate`; `python -m resnext.train` is the CLI.

    import resnext
    data = resnext.data.shapes(n_train=12000, n_test=1000)
    cfg = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16,
                                stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)
    result = resnext.train.fit(cfg, data, epochs=5, batch_size=64, out_dir="runs/shapes")
    cfg, model, meta = resnext.train.load_run("runs/shapes")
"""

from __future__ import annotations

from .engine import FitResult, evaluate, fit
from .estimate import Estimate, estimate
from .recipes import RECIPE_NAMES, RECIPES, Recipe, learning_rate
from .runs import METRIC_KEYS, STATES, RunError, load_run, read_metrics

__all__ = [
    "METRIC_KEYS", "RECIPES", "RECIPE_NAMES", "STATES", "Estimate", "FitResult", "Recipe",
    "RunError", "estimate", "evaluate", "fit", "learning_rate", "load_run", "read_metrics",
]
