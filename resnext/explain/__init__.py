"""Attribution maps and how far they can be trusted, as a library: no Gradio, torch and
Captum imported on first use.

    from resnext import explain
    maps = explain.attribute_batch(model, images, labels, "gradcam", mean=mean, std=std)
    explain.energy_in_mask(maps, masks)              # (N,) share of positive attribution inside
    result = explain.evaluate(model, data.test, ["saliency", "gradcam"], 48, data.mean, data.std)
    result.to_json()                                 # what the app's /evaluate returns

- `attribute` (one image, the app's Attributions tab) and `attribute_batch` (a batch, the
  evaluation): the eight methods, Integrated Gradients once per baseline in evaluations;
  their reference images and the one blur come from `make_baseline` / `gaussian_blur`;
- metrics on maps `(N, H, W)` and bool masks: `energy_in_mask`, `marker_share`,
  `distractor_share`, `pointing_game`, `random_baseline`, `perturbation_curves` (deletion/insertion, pixels
  ranked by `pixel_ranks`), `spearman`, `ssim`, `topk_overlap`, `compare_maps`;
- `randomization_check` (Adebayo et al. 2018), `evaluate` and `sanity_check` on a test split
  with masks; `python -m resnext.explain RUN_DIR` on a trained run;
- `Stopped`: raised when a caller's `should_stop()` says stop (no torch needed to import it).
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .names import ALL_METRICS, DEFAULT_ROWS, METHOD_ROWS, METRICS, ROW_LABELS, TARGETS
from .stopping import Stopped

_LAZY = {
    # One image (the Attributions tab's path)
    "AttributionSettings": ".single",
    "Attribution": ".single",
    "DeletionCurve": ".single",
    "attribute": ".single",
    "deletion_curve": ".single",
    "layer_choices": ".single",
    "resolve_layer": ".single",
    # A batch
    "BatchSettings": ".batch",
    "attribute_batch": ".batch",
    # Reference images and the one blur
    "make_baseline": ".baselines",
    "gaussian_blur": ".baselines",
    "blur_sigma": ".baselines",
    # Metrics
    "energy_in_mask": ".metrics",
    "marker_share": ".metrics",
    "distractor_share": ".metrics",
    "pointing_game": ".metrics",
    "random_baseline": ".metrics",
    "perturbation_curves": ".metrics",
    "PerturbationCurves": ".metrics",
    "pixel_ranks": ".metrics",
    "spearman": ".sanity",
    "ssim": ".sanity",
    "topk_overlap": ".sanity",
    "compare_maps": ".sanity",
    "randomization_check": ".sanity",
    # Evaluations
    "EvaluationResult": ".evaluation",
    "MethodScores": ".evaluation",
    "SanityResult": ".sanity",
    "evaluate": ".evaluation",
    "evaluate_batch": ".evaluation",
    "load_test_batch": ".evaluation",
    "sanity_check": ".evaluation",
}

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)

__all__ = ["ALL_METRICS", "DEFAULT_ROWS", "METHOD_ROWS", "METRICS", "ROW_LABELS", "TARGETS",
           "Stopped", *_LAZY]
