"""The names of the evaluation's rows and metrics, with no torch: the Evaluate tab builds
its controls from them at start-up, before anything heavy is imported."""

from __future__ import annotations

# Base methods (the Attributions tab's eight, plus a random reference).
BASE_METHODS = ("saliency", "integrated_gradients", "gradient_shap", "deeplift", "smoothgrad",
                "occlusion", "gradcam", "guided_gradcam", "random")
IG_BASELINES = ("black", "blurred", "mean")

# Evaluation rows: name -> (base method, baseline). Integrated Gradients' answer depends on
# its baseline (Sturmfels et al., Distill 2020), so each baseline is a row of its own.
METHOD_ROWS: dict[str, tuple[str, str]] = {
    "saliency": ("saliency", ""),
    "integrated_gradients_black": ("integrated_gradients", "black"),
    "integrated_gradients_blurred": ("integrated_gradients", "blurred"),
    "integrated_gradients_mean": ("integrated_gradients", "mean"),
    "gradient_shap": ("gradient_shap", ""),
    "deeplift": ("deeplift", "mean"),
    "smoothgrad": ("smoothgrad", ""),
    "occlusion": ("occlusion", "mean"),
    "gradcam": ("gradcam", ""),
    "guided_gradcam": ("guided_gradcam", ""),
    "random": ("random", ""),
}
ROW_LABELS: dict[str, str] = {
    "saliency": "Saliency",
    "integrated_gradients_black": "Integrated Gradients (black)",
    "integrated_gradients_blurred": "Integrated Gradients (blurred)",
    "integrated_gradients_mean": "Integrated Gradients (mean)",
    "gradient_shap": "GradientShap",
    "deeplift": "DeepLift (mean)",
    "smoothgrad": "SmoothGrad",
    "occlusion": "Occlusion (mean fill)",
    "gradcam": "Grad-CAM",
    "guided_gradcam": "Guided Grad-CAM",
    "random": "random map",
}
# The eight methods with IG's three baselines: the default evaluation (no random row).
DEFAULT_ROWS = tuple(name for name in METHOD_ROWS if name != "random")
REDUCTIONS = {"saliency": "abs-sum", "smoothgrad": "abs-sum", "guided_gradcam": "abs-sum",
              "integrated_gradients": "sum", "gradient_shap": "sum", "deeplift": "sum",
              "occlusion": "sum", "gradcam": "upsampled", "random": "none"}

# Higher is better for each metric, except deletion AUC (Petsiuk et al.: a faithful map's
# pixels, removed first, make the score fall fast). Marker share: higher = the network (and
# the map) rely on the shortcut; it is a finding, not a quality. Distractor share: the share
# on shapes that are not the label (shapes-distractors); lower is better, the map is wrong
# there by construction.
METRICS = ("energy", "pointing", "deletion_auc", "insertion_auc", "marker_share")
# Every metric an evaluation can report. distractor_share stays out of METRICS, the list the
# Evaluate tab lays out one chart per entry of, until that tab shows it;
# `EvaluationResult.metrics` says which ones a result has.
ALL_METRICS = METRICS + ("distractor_share",)
# The metrics scored only where the test split marks their pixels: metric -> the split's
# attribute (resnext.data's ImageTensors) that holds those masks.
MASKED_METRICS = {"marker_share": "marker_masks", "distractor_share": "distractor_masks"}
METRIC_LABELS = {
    "energy": "energy in mask",
    "pointing": "pointing game",
    "deletion_auc": "deletion AUC (lower is better)",
    "insertion_auc": "insertion AUC",
    "marker_share": "share on the shortcut marker",
    "distractor_share": "share on distractors (lower is better)",
}
HIGHER_IS_BETTER = {"energy": True, "pointing": True, "deletion_auc": False,
                    "insertion_auc": True, "marker_share": False, "distractor_share": False}
TARGETS = ("label", "predicted")
