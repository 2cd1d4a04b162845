"""The Evaluate tab's charts of `resnext.explain` results: a metric per method, runs side
by side, the randomization curves."""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from resnext.explain.evaluation import EvaluationResult
from resnext.explain.names import METRIC_LABELS, METRICS, ROW_LABELS
from resnext.explain.sanity import MEASURES, SanityResult

from ..shared.plots import figure

def metric_figure(result: EvaluationResult, metric: str):
    """Bars: the metric's mean per method (error bars: standard error over images), with
    what a random map scores as a dashed line."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    shown = [s for s in result.methods if getattr(s, metric) is not None and s.method != "random"]
    bars = {
        "type": "bar", "name": METRIC_LABELS[metric],
        "x": [ROW_LABELS.get(s.method, s.method) for s in shown],
        "y": [float(np.mean(s.values(metric))) for s in shown],
        "error_y": {"type": "data", "array": [s.sem(metric) for s in shown], "visible": True},
        "hovertemplate": "%{x}: %{y:.3f}<extra></extra>",
    }
    layout: dict[str, Any] = {
        "title": {"text": f"{METRIC_LABELS[metric]} per method ({len(result.indices)} test images)"},
        "yaxis": {"title": {"text": METRIC_LABELS[metric]}, "rangemode": "tozero"},
        "xaxis": {"tickangle": -30}, "height": 360, "showlegend": False,
    }
    line = result.random_line(metric)
    if line is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                             "y0": line, "y1": line, "line": {"dash": "dash", "width": 2}}]
        layout["annotations"] = [{"xref": "paper", "x": 1, "xanchor": "right", "yref": "y",
                                  "y": line, "yanchor": "bottom", "showarrow": False,
                                  "text": f"random map: {line:.3f}"}]
    return figure([bars], layout)


def compare_figure(results: Mapping[str, EvaluationResult], metric: str):
    """Grouped bars: one group per method, one bar per run (e.g. C=1 vs C=8 at equal MACs)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    traces = []
    for run_name, result in results.items():
        shown = [s for s in result.methods if getattr(s, metric) is not None]
        traces.append({
            "type": "bar", "name": f"{run_name} (accuracy {result.accuracy:.1%})",
            "x": [ROW_LABELS.get(s.method, s.method) for s in shown],
            "y": [float(np.mean(s.values(metric))) for s in shown],
            "error_y": {"type": "data", "array": [s.sem(metric) for s in shown], "visible": True},
        })
    layout = {"title": {"text": f"{METRIC_LABELS[metric]}: runs side by side"}, "barmode": "group",
              "yaxis": {"title": {"text": METRIC_LABELS[metric]}, "rangemode": "tozero"},
              "xaxis": {"tickangle": -30}, "height": 380}
    return figure(traces, layout)


def sanity_figure(result: SanityResult, measure: str = "spearman"):
    """Randomization curves (Adebayo et al. Fig. 2/4): similarity to the trained network's
    maps as the weights are re-initialised from the top down."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    names = {"spearman": "Spearman rank correlation (|map|)", "ssim": "SSIM (|map|)",
             "topk": "top-10 % overlap"}
    traces = [{"type": "scatter", "mode": "lines+markers", "name": result.labels.get(m, m),
               "x": list(result.steps), "y": [None if not math.isfinite(v) else v
                                              for v in curves[measure]]}
              for m, curves in result.curves.items()]
    layout = {"title": {"text": "Cascading randomization: similarity to the trained maps"},
              "xaxis": {"title": {"text": "re-initialised down to"}, "type": "category"},
              "yaxis": {"title": {"text": names[measure]}, "range": [-0.2 if measure == "spearman" else 0, 1.05]},
              "height": 380}
    return figure(traces, layout)
