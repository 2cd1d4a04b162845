"""Train any ResNeXtConfig: `fit`, `load_run`, `estimate`; `python -m resnext.train` is the CLI.

    import resnext
    data = resnext.data.shapes(n_train=12000, n_test=1000)
    cfg = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16,
                                stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)
    result = resnext.train.fit(cfg, data, epochs=5, batch_size=64, out_dir="runs/shapes")
    cfg, model, meta = resnext.train.load_run("runs/shapes")
    resnext.train.resume("runs/stopped-run")   # continue a stopped or interrupted run
"""

from __future__ import annotations

from .._lazy import lazy_attributes

# Each public name and the module that holds it, imported on first use: the run-folder
# format (`resnext.train.runs`) is readable without torch (the app follows runs with it).
_SOURCES = {
    "FitResult": ".engine", "evaluate": ".engine", "fit": ".engine", "resume": ".engine",
    # A module named like its function would shadow it once imported: hence "estimation".
    "Estimate": ".estimation", "estimate": ".estimation",
    "RECIPE_NAMES": ".recipes", "RECIPES": ".recipes", "Recipe": ".recipes",
    "learning_rate": ".recipes",
    "METRIC_KEYS": ".runs", "STATES": ".runs", "RunError": ".runs", "load_run": ".runs",
    "read_metrics": ".runs",
}


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _SOURCES)


__all__ = [
    "METRIC_KEYS", "RECIPES", "RECIPE_NAMES", "STATES", "Estimate", "FitResult", "Recipe",
    "RunError", "estimate", "evaluate", "fit", "learning_rate", "load_run", "read_metrics",
    "resume",
]
