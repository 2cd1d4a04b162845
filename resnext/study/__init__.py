"""Studies: one architecture knob x seeds, each (value, seed) an ordinary training run scored
by `resnext.explain`, reported per value as mean and 95 % interval over the seeds.

The paper's claim is comparative (Xie et al. 2017, Tables 2-3: at equal complexity, more
cardinality beats more width or depth); a study asks it of any base network and also asks
whether the knob changes where the network looks.

    from resnext import study
    spec = study.StudySpec(name="table2", base=base_cfg, knob="cardinality",
                           values=(1, 2, 4, 8, 32), keep_complexity=True, seeds=(0, 1, 2),
                           data=study.data_spec("shapes", train_size=2000), epochs=5,
                           methods=("saliency", "gradcam"))
    study.plan(spec)              # every point's network and cost, checked
    study.estimate(spec)          # seconds for the whole study
    study.create(spec)            # into runs/studies.db (or storage="postgresql://...")
    study.work("table2")          # train until no trial waits (any number of workers)
    result = study.report("table2")   # points with intervals, trials, steps (live)
    study.to_csv(result); study.to_text(result)

The engine is Optuna (an RDB storage shared by any number of workers, heartbeats for
workers that die); `python -m resnext.study create|work|show|search` is the CLI.
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .knobs import KEEP_BY, KNOBS, config_for, matching_width, parse_values
from .spec import (
    DEFAULT_GRACE,
    DEFAULT_HEARTBEAT,
    DEFAULT_METHODS,
    SearchSpec,
    StudySpec,
    data_spec,
)
from .stats import difference, seeds_needed, summary, t_quantile, verdict

# Optuna, SQLAlchemy and torch load when a name that needs them is first used. No module is
# named like a function here: once imported, a submodule would shadow the function.
_LAZY = {
    "plan": ".planning", "create": ".planning",
    "estimate": ".estimation",
    "work": ".worker", "start": ".worker", "step": ".worker", "open_study": ".worker",
    "report": ".reporting", "to_csv": ".reporting", "to_text": ".reporting",
    "studies": ".reporting",
    "default_url": ".storage",
}

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)

__all__ = [
    "DEFAULT_GRACE", "DEFAULT_HEARTBEAT", "DEFAULT_METHODS", "KEEP_BY", "KNOBS", "SearchSpec",
    "StudySpec", "config_for", "data_spec", "difference", "matching_width", "parse_values",
    "seeds_needed", "summary", "t_quantile", "verdict", *_LAZY,
]
