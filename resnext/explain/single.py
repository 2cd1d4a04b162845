"""Attribution maps of one image through Captum: validated settings, progress and
cancellation, and the deletion curve of a map. Plain functions on models and tensors.

Inputs are normalised (1, 3, H, W) tensors: ImageNet's mean and std for ImageNet-style
networks (`resnext.preprocess`), a trained run's own training-set mean and std for a run.
So the "black" baseline is the normalised value of a black pixel under those statistics, not
0, and "remove a pixel" in the deletion curve means "set it to 0 in normalised space", i.e.
the dataset's mean colour.

Callers hold the model's lock while attributing: Captum registers hooks on the model's
modules (DeepLift, Guided Grad-CAM, Grad-CAM) and two requests hooking one model at once
would see each other's hooks. Batches of images: `resnext.explain.batch`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from ..validation import whole_number
from .baselines import make_baseline
from .stopping import StopCheck, stop_if_asked

# name -> what a person reads. Order is the order of the method picker.
METHODS: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "guided_gradcam": "Guided Grad-CAM",
    "saliency": "Saliency (gradient)",
    "integrated_gradients": "Integrated Gradients",
    "gradient_shap": "GradientShap",
    "deeplift": "DeepLift",
    "smoothgrad": "SmoothGrad (NoiseTunnel)",
    "occlusion": "Occlusion",
}
# The one-image path's reference images (`baselines.make_baseline`); evaluations offer
# "mean" instead of "noise" (names.IG_BASELINES).
BASELINES = ("black", "blurred", "noise")
SMOOTHGRAD_OVER = ("saliency", "integrated_gradients")




@dataclass(frozen=True)
class Limit:
    """A numeric control's range; `label` is the control's label, so messages name it."""

    label: str
    low: float
    high: float


# Each limit once: the settings check below enforces it and the tab builds its slider from it.
LIMITS: dict[str, Limit] = {
    "n_steps": Limit("IG steps", 2, 512),
    "internal_batch_size": Limit("Internal batch size", 1, 64),
    "n_samples": Limit("Samples (SmoothGrad, GradientShap)", 1, 64),
    "noise_level": Limit("Noise (share of the input range)", 0.01, 0.5),
    "window": Limit("Occlusion window", 2, 256),
    "stride": Limit("Occlusion stride", 1, 256),
}




@dataclass(frozen=True)
class AttributionSettings:
    """A method and the few parameters that matter for it (others are ignored)."""

    method: str = "gradcam"
    # Integrated Gradients (Sundararajan et al. 2017): Riemann/Gauss-Legendre steps along the
    # straight path from the baseline, run `internal_batch_size` at a time so memory stays at
    # one batch's activations whatever n_steps is.
    n_steps: int = 32
    baseline: str = "black"  # IG, DeepLift, GradientShap, Occlusion's fill
    internal_batch_size: int = 8  # also SmoothGrad's and GradientShap's batch, Occlusion's
    n_samples: int = 16  # GradientShap and SmoothGrad samples
    # SmoothGrad (Smilkov et al. 2017) recommends noise of 10-20 % of the input's range.
    noise_level: float = 0.15
    smoothgrad_over: str = "saliency"
    window: int = 32  # Occlusion (Zeiler & Fergus 2014): square patch side, pixels
    stride: int = 16
    layer: str = ""  # Grad-CAM layer ("layer4", "layer3.5"); "" = the last stage

    def checked(self) -> "AttributionSettings":
        """These settings with whole numbers as ints; ValueError naming the control if not."""
        if self.method not in METHODS:
            raise ValueError(f"Method: unknown method {self.method!r}; choose one of "
                             f"{', '.join(METHODS)}")
        if self.baseline not in BASELINES:
            raise ValueError(f"Baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.smoothgrad_over not in SMOOTHGRAD_OVER:
            raise ValueError(f"SmoothGrad over: one of {', '.join(SMOOTHGRAD_OVER)}, "
                             f"got {self.smoothgrad_over!r}")
        if not isinstance(self.layer, str):
            raise ValueError(f"Grad-CAM layer: expected a layer name, got {self.layer!r}")
        values = {name: whole_number(LIMITS[name].label, getattr(self, name),
                                     int(LIMITS[name].low), int(LIMITS[name].high))
                  for name in ("n_steps", "internal_batch_size", "n_samples", "window", "stride")}
        noise = LIMITS["noise_level"]
        if not in_range(self.noise_level, noise):
            raise ValueError(f"{noise.label} must be a number in [{noise.low:g}, {noise.high:g}], "
                             f"got {self.noise_level!r}")
        if self.method == "occlusion" and values["stride"] > values["window"]:
            # Captum's Occlusion asserts this: a stride over the window skips pixels, which
            # then get no attribution at all.
            raise ValueError(f"Occlusion stride ({values['stride']}) must not exceed the "
                             f"occlusion window ({values['window']}): strides longer than the "
                             f"window skip pixels. Set the stride to {values['window']} or less.")
        return replace(self, layer=self.layer.strip(), **values)


def in_range(value: Any, limit: Limit) -> bool:
    """A real, finite number (not a bool) within the limit."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and limit.low <= value <= limit.high)


@dataclass
class Attribution:
    method: str
    target: int
    values: np.ndarray  # (C, H, W) as Captum returned it; C = 1 for Grad-CAM
    pixel_map: np.ndarray  # (H, W): channels summed, as captum.attr.visualization does
    convergence_delta: float | None = None  # IG / DeepLift: sum(attr) - (f(x) - f(baseline))
    seconds: float = 0.0


@dataclass
class DeletionCurve:
    """Target probability as the most attributed pixels are removed (Petsiuk et al. 2018)."""

    fractions: np.ndarray  # (steps + 1,) share of pixels removed, 0 .. 1
    probabilities: np.ndarray  # (steps + 1,)
    auc: float  # area under the curve: lower means the map found what the model uses


# Layers and baselines --------------------------------------------------------------------

def layer_choices(config: Any) -> list[str]:
    """Grad-CAM layer names of a ResNeXt config: each stage, then each block ("layer3.5")."""
    stages = [f"layer{i + 1}" for i in range(len(config.stage_blocks))]
    blocks = [f"{stage}.{b}" for stage, count in zip(stages, config.stage_blocks)
              for b in range(count)]
    return stages + blocks


def resolve_layer(model: Any, name: str) -> Any:
    """The module for a layer name; "" means the last stage (Grad-CAM paper's choice: the last
    convolutional features, best trade-off of semantics and spatial detail)."""
    if not name:
        stage_names = getattr(model, "stage_names", None)
        if not stage_names:
            raise ValueError("this model has no stages: name the Grad-CAM layer")
        name = stage_names[-1]
    try:
        return model.get_submodule(name)
    except AttributeError:
        known = layer_choices(model.config) if hasattr(model, "config") else []
        raise ValueError(f"no layer {name!r} in this model"
                         + (f"; choose one of {', '.join(known[:12])}, ..." if known else "")) from None


# Progress and stopping ---------------------------------------------------------------

def expected_forwards(settings: AttributionSettings, height: int, width: int) -> int:
    """How many model forward calls a method makes (for the progress bar)."""
    s = settings
    batches = math.ceil(s.n_steps / s.internal_batch_size)
    if s.method == "integrated_gradients":
        return batches + 1  # + the convergence-delta forward
    if s.method == "gradient_shap":
        return math.ceil(s.n_samples / s.internal_batch_size)
    if s.method == "deeplift":
        return 2
    if s.method == "smoothgrad":
        if s.smoothgrad_over == "saliency":
            return math.ceil(s.n_samples / s.internal_batch_size)
        return s.n_samples * batches
    if s.method == "occlusion":
        window = min(s.window, height, width)
        stride = min(s.stride, window)
        windows = ((max(height - window, 0) // stride + 1)
                   * (max(width - window, 0) // stride + 1))
        return 1 + math.ceil(windows / s.internal_batch_size)
    return 2 if s.method == "guided_gradcam" else 1


class ForwardMonitor:
    """Counts the model's forward calls to report progress, and stops the run when
    `should_stop()` says so.

    A forward pre-hook on the top module sees every batch Captum evaluates; raising
    `Stopped` from it unwinds Captum, whose methods remove their own hooks in `finally`
    blocks.
    """

    def __init__(self, model: Any, expected: int,
                 report: Callable[[float], None] | None = None,
                 should_stop: StopCheck = None) -> None:
        self.model = model
        self.expected = max(1, expected)
        self.report = report
        self.should_stop = should_stop
        self.calls = 0
        self._handle = None

    def _before_forward(self, module: Any, inputs: Any) -> None:
        stop_if_asked(self.should_stop)
        self.calls += 1
        if self.report is not None:
            self.report(min(self.calls / self.expected, 1.0))

    def __enter__(self) -> "ForwardMonitor":
        self._handle = self.model.register_forward_pre_hook(self._before_forward)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handle.remove()


# Captum ----------------------------------------------------------------------------------

def captum_attribute(model: Any, x: Any, target: int, settings: AttributionSettings,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None
                     ) -> tuple[Any, Any]:
    """Run one Captum method: (attributions (1, C, H, W), convergence delta or None).

    Exactly the Captum calls, nothing else: the benchmark times this against the app's path.
    `mean`/`std`: how x was normalised (None: ImageNet's), for the baselines.
    """
    import torch

    from ..imaging import IMAGENET_MEAN, IMAGENET_STD
    from .captum_calls import captum_call

    def baseline_like(x: Any, kind: str) -> Any:
        return make_baseline(x, kind, IMAGENET_MEAN if mean is None else mean,
                             IMAGENET_STD if std is None else std)

    s = settings
    x = x.detach().requires_grad_(True)
    height, width = x.shape[-2:]
    if s.method in ("integrated_gradients", "deeplift"):
        baseline = baseline_like(x.detach(), s.baseline)
        return captum_call(model, s.method, x, target, baselines=baseline, n_steps=s.n_steps,
                           internal_batch_size=s.internal_batch_size, return_delta=True)
    if s.method in ("gradient_shap", "smoothgrad"):
        # SmoothGrad's noise level is a fraction of the input's range (Smilkov et al. 2017).
        stdev = s.noise_level * float(x.detach().max() - x.detach().min())
    if s.method == "gradient_shap":
        # Captum batches all n_samples at once; the estimate is a mean over samples, so
        # equal chunks averaged give the same estimator with one chunk's memory.
        references = torch.cat([baseline_like(x.detach(), kind) for kind in BASELINES])
        chunks = [min(s.internal_batch_size, s.n_samples - start)
                  for start in range(0, s.n_samples, s.internal_batch_size)]
        total = None
        for size in chunks:
            part, _ = captum_call(model, s.method, x, target, baselines=references,
                                  n_samples=size, stdev=stdev)
            total = part * size if total is None else total + part * size
        return total / s.n_samples, None
    if s.method == "smoothgrad" and s.smoothgrad_over == "saliency":
        return captum_call(model, s.method, x, target, n_samples=s.n_samples,
                           samples_batch_size=s.internal_batch_size, stdev=stdev)
    if s.method == "smoothgrad":
        # One noisy copy at a time; IG then batches its steps internally.
        return captum_call(model, s.method, x, target, smoothgrad_over=s.smoothgrad_over,
                           baselines=baseline_like(x.detach(), s.baseline), n_steps=s.n_steps,
                           internal_batch_size=s.internal_batch_size, n_samples=s.n_samples,
                           samples_batch_size=1, stdev=stdev)
    if s.method == "occlusion":
        # A window larger than the image covers all of it; the stride follows (see checked).
        window = min(s.window, height, width)
        stride = min(s.stride, window)
        return captum_call(model, s.method, x, target,
                           baselines=baseline_like(x.detach(), s.baseline),
                           window=(3, window, window), strides=(3, stride, stride),
                           perturbations_per_eval=s.internal_batch_size)
    layer = resolve_layer(model, s.layer) if s.method in ("gradcam", "guided_gradcam") else None
    return captum_call(model, s.method, x, target, layer=layer)


def attribute(model: Any, x: Any, target: int, settings: AttributionSettings,
              report: Callable[[float], None] | None = None, should_stop: StopCheck = None,
              mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
              seed: int = 0) -> Attribution:
    """One image's map: validated settings, progress (`report(fraction)`), numpy result.
    `should_stop()` is asked before every forward pass; yes raises `stopping.Stopped`.
    `mean`/`std`: how x was normalised (None: ImageNet's; a trained run: its dataset's).
    The noise of SmoothGrad and GradientShap is drawn from `seed` (the same request gives
    the same map), leaving the global generators as they were."""
    from .batch import seeded_randomness

    settings = settings.checked()
    start = time.perf_counter()
    expected = expected_forwards(settings, x.shape[-2], x.shape[-1])
    with ForwardMonitor(model, expected, report, should_stop), seeded_randomness(seed):
        attributions, delta = captum_attribute(model, x, target, settings, mean, std)
    values = attributions.detach()[0].float().cpu().numpy()  # (C, H, W)
    return Attribution(
        method=settings.method, target=target, values=values, pixel_map=values.sum(axis=0),
        convergence_delta=None if delta is None else float(delta.detach().reshape(-1)[0]),
        seconds=time.perf_counter() - start)


# Faithfulness ----------------------------------------------------------------------------

def deletion_curve(model: Any, x: Any, pixel_map: np.ndarray, target: int, steps: int = 16,
                   batch_size: int = 8, seed: int = 0) -> DeletionCurve:
    """Remove the most attributed pixels first, `1/steps` of them at a time, and track the
    target's softmax probability (Petsiuk et al. 2018, RISE, "deletion" metric).

    A removed pixel is set to 0 in normalised space (the dataset mean colour). Pixels are
    ranked as the evaluation's curves rank them (`metrics.pixel_ranks`: ties, e.g. all-zero
    regions, in one fixed random order, not raster order).
    """
    import torch

    from .metrics import pixel_ranks

    height, width = pixel_map.shape
    count = height * width
    rank_t = pixel_ranks(torch.as_tensor(pixel_map)[None], seed)[0].to(x.device)  # (H, W)
    removed_counts = [round(count * k / steps) for k in range(steps + 1)]
    probabilities = []
    with torch.inference_mode():
        for start in range(0, len(removed_counts), batch_size):
            counts = torch.tensor(removed_counts[start:start + batch_size], device=x.device)
            keep = (rank_t[None] >= counts[:, None, None]).to(x.dtype)  # (B, H, W)
            batch = x.detach() * keep[:, None]  # (B, 3, H, W)
            logits = model(batch)
            probabilities.append(torch.softmax(logits.float(), dim=1)[:, target].cpu())
    probs = torch.cat(probabilities).numpy().astype(np.float64)
    fractions = np.asarray(removed_counts, dtype=np.float64) / count
    return DeletionCurve(fractions, probs, float(np.trapezoid(probs, fractions)))


