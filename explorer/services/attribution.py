"""Attribution maps through Captum, and what is drawn from them: overlays, deletion curves,
feature-map grids, top-5 predictions. Plain functions on models, tensors and arrays.

Inputs are normalised (1, 3, H, W) tensors: ImageNet's mean and std for ImageNet-style
networks (`resnext.preprocess`), a trained run's own training-set mean and std for a run.
So the "black" baseline is the normalised value of a black pixel under those statistics, not
0, and "remove a pixel" in the deletion curve means "set it to 0 in normalised space", i.e.
the dataset's mean colour.

Callers hold the model's cache lock while attributing: Captum registers hooks on the
model's modules (DeepLift, Guided Grad-CAM, Grad-CAM) and two requests hooking one model
at once would see each other's hooks.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from resnext.validation import whole_number
# Re-exported for callers that read predictions beside the maps.
from .predictions import class_names_for, imagenet_class_names, top_predictions  # noqa: F401


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
BASELINES = ("black", "blurred", "noise")
SIGNS = ("positive", "absolute", "all")
SMOOTHGRAD_OVER = ("saliency", "integrated_gradients")
# One-sided values (positive, absolute) read on a sequential map, dark to bright; signed
# values ("all") on a diverging map whose neutral middle is 0 (Captum's visualisation does
# the same: blended heat maps use a sequential map, signed ones a diverging one).
SEQUENTIAL_COLORMAPS = ("inferno", "viridis", "hot", "jet")
DIVERGING_COLORMAPS = ("RdBu_r", "coolwarm")
COLORMAPS = SEQUENTIAL_COLORMAPS + DIVERGING_COLORMAPS
# Each colour map's RGB at 0, 0.1, ..., 1 (matplotlib's, rounded; tests/test_attributions.py
# checks them against matplotlib): the colour bar is drawn from these, so building the page
# does not import matplotlib (~60 ms of start-up) just to sample eleven colours.
COLOUR_STOPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "inferno": (
        (0, 0, 4), (22, 11, 57), (66, 10, 104), (106, 23, 110), (147, 38, 103), (188, 55, 84),
        (221, 81, 58), (243, 120, 25), (252, 165, 10), (246, 215, 70), (252, 255, 164),
    ),
    "viridis": (
        (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
        (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
    ),
    "hot": (
        (11, 0, 0), (76, 0, 0), (144, 0, 0), (210, 0, 0), (255, 23, 0), (255, 92, 0),
        (255, 157, 0), (255, 225, 0), (255, 255, 54), (255, 255, 157), (255, 255, 255),
    ),
    "jet": (
        (0, 0, 128), (0, 0, 241), (0, 76, 255), (0, 176, 255), (41, 255, 206), (125, 255, 122),
        (206, 255, 41), (255, 196, 0), (255, 104, 0), (241, 8, 0), (128, 0, 0),
    ),
    "RdBu_r": (
        (5, 48, 97), (32, 101, 171), (67, 147, 195), (144, 196, 221), (209, 229, 240),
        (247, 246, 246), (253, 219, 199), (243, 164, 129), (214, 96, 77), (177, 24, 43),
        (103, 0, 31),
    ),
    "coolwarm": (
        (59, 76, 192), (89, 119, 227), (123, 159, 249), (158, 190, 255), (192, 212, 245),
        (221, 220, 220), (242, 203, 183), (247, 172, 142), (238, 132, 104), (214, 82, 68),
        (180, 4, 38),
    ),
}
# The object's outline over a map: cyan is far from every colour map's colours but jet's
# middle, and from the photo's (the shapes are drawn in saturated primaries).
OUTLINE_COLOUR = (0, 255, 255)
# Overlays of up to half this side (a trained run's 16-64 px images) are enlarged by a whole
# factor, without smoothing, towards it (the 320 px overlay box less its label): shown at
# their own size they are a stamp, the browser would blur them if it scaled them, and a
# one-pixel outline would be a band across the object.
SMALL_OVERLAY_SIDE = 288


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
    "opacity": Limit("Opacity", 0.0, 1.0),
    "channels": Limit("Channels per stage", 1, 32),
}
FEATURE_CHANNELS = 8  # feature maps: channels shown per stage by default
PREDICTED_CLASS = "predicted class"  # the target picker's first entry: explain the top class


class AttributionCancelled(Exception):
    """The user pressed Cancel; raised from inside the model's forward to stop Captum."""


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


def gaussian_blur(x: Any, sigma: float) -> Any:
    """Separable Gaussian blur of (N, C, H, W), reflect-padded, each channel on its own."""
    import torch
    import torch.nn.functional as F

    radius = max(1, int(3 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()  # (2r+1,)
    channels = x.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (C, 1, 1, 2r+1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # (C, 1, 2r+1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), horizontal, groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), vertical, groups=channels)


def make_baseline(x: Any, kind: str, seed: int = 0, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> Any:
    """A reference image like x (1, 3, H, W), normalised as x is: by `mean`/`std` (ImageNet's
    when not given; a trained run's own)."""
    import torch

    from resnext.imaging import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN if mean is None else tuple(mean), dtype=x.dtype,
                        device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD if std is None else tuple(std), dtype=x.dtype,
                       device=x.device).view(1, 3, 1, 1)
    if kind == "black":
        return ((0.0 - mean) / std).expand_as(x).contiguous()
    if kind == "blurred":
        # Sturmfels et al. (Distill 2020, "Visualizing the impact of feature attribution
        # baselines"): a blurred copy keeps colour but removes the detail a classifier uses.
        return gaussian_blur(x, sigma=max(1.0, x.shape[-1] / 20))
    if kind == "noise":
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.rand(x.shape, generator=generator, dtype=torch.float32)
        return ((pixels.to(x.device, x.dtype) - mean) / std)
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")


# Progress and cancellation ---------------------------------------------------------------

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
    """Counts the model's forward calls to report progress, and stops the run on cancel.

    A forward pre-hook on the top module sees every batch Captum evaluates; raising from it
    unwinds Captum, whose methods remove their own hooks in `finally` blocks.
    """

    def __init__(self, model: Any, expected: int,
                 report: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.model = model
        self.expected = max(1, expected)
        self.report = report
        self.cancel = cancel
        self.calls = 0
        self._handle = None

    def _before_forward(self, module: Any, inputs: Any) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise AttributionCancelled("cancelled")
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

    from .captum_calls import captum_call

    def baseline_like(x: Any, kind: str) -> Any:
        return make_baseline(x, kind, mean=mean, std=std)

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
              report: Callable[[float], None] | None = None,
              cancel: threading.Event | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> Attribution:
    """The app's attribution path: validated settings, progress and cancel, numpy result.
    `mean`/`std`: how x was normalised (None: ImageNet's; a trained run: its dataset's)."""
    settings = settings.checked()
    start = time.perf_counter()
    expected = expected_forwards(settings, x.shape[-2], x.shape[-1])
    with ForwardMonitor(model, expected, report, cancel):
        attributions, delta = captum_attribute(model, x, target, settings, mean, std)
    values = attributions.detach()[0].float().cpu().numpy()  # (C, H, W)
    return Attribution(
        method=settings.method, target=target, values=values, pixel_map=values.sum(axis=0),
        convergence_delta=None if delta is None else float(delta.detach().reshape(-1)[0]),
        seconds=time.perf_counter() - start)


# Predictions -----------------------------------------------------------------------------

def resolve_target(choice: Any, class_names: Sequence[str], predicted: int) -> int:
    """The class index for a target choice: "" / "predicted" -> predicted; an index; a name;
    or "index: name" as the target picker lists them."""
    if choice is None or (isinstance(choice, str) and choice.strip().lower() in ("", "predicted",
                                                                                    PREDICTED_CLASS)):
        return predicted
    if isinstance(choice, (int, float)) and not isinstance(choice, bool) and float(choice).is_integer():
        index = int(choice)
    else:
        text = str(choice).strip()
        head = text.split(":", 1)[0].strip()
        if head.isdigit():
            index = int(head)
        else:
            matches = [i for i, name in enumerate(class_names) if name.lower() == text.lower()]
            if not matches:
                raise ValueError(f"no class named {text!r}; pick one from the list "
                                 f"(e.g. {class_names[0]!r}) or give its index")
            index = matches[0]
    if not 0 <= index < len(class_names):
        raise ValueError(f"class index must be in [0, {len(class_names) - 1}], got {index}")
    return index


def target_choices(class_names: Sequence[str]) -> list[str]:
    """The target picker's entries: the predicted class, then "index: name" for each class."""
    return [PREDICTED_CLASS] + [f"{i}: {name}" for i, name in enumerate(class_names)]


# Faithfulness ----------------------------------------------------------------------------

def deletion_curve(model: Any, x: Any, pixel_map: np.ndarray, target: int, steps: int = 16,
                   batch_size: int = 8, seed: int = 0) -> DeletionCurve:
    """Remove the most attributed pixels first, `1/steps` of them at a time, and track the
    target's softmax probability (Petsiuk et al. 2018, RISE, "deletion" metric).

    A removed pixel is set to 0 in normalised space (the dataset mean colour). Ties in the
    map (e.g. all-zero regions) are broken in a fixed random order, not raster order.
    """
    import torch

    height, width = pixel_map.shape
    count = height * width
    tie_break = np.random.default_rng(seed).permutation(count)
    order = np.lexsort((tie_break, -pixel_map.reshape(-1)))  # most attributed first
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)  # rank[p] = when pixel p is removed
    rank_t = torch.from_numpy(rank.reshape(height, width)).to(x.device)
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


# Drawing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Display:
    """How a map is drawn over the photo; changing it redraws without recomputing."""

    sign: str = "positive"
    colormap: str = "inferno"
    # Half-strength at the map's brightest: the photo stays recognisable under the colour.
    opacity: float = 0.5

    def checked(self) -> "Display":
        if self.sign not in SIGNS:
            raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {self.sign!r}")
        allowed = colormaps_for(self.sign)
        if self.colormap not in allowed:
            kind = ("a diverging map centred on 0" if self.sign == "all"
                    else "a sequential map (dark = none, bright = most)")
            raise ValueError(f"Colour map: sign {self.sign!r} needs {kind}: one of "
                             f"{', '.join(allowed)}, got {self.colormap!r}")
        if not in_range(self.opacity, LIMITS["opacity"]):
            raise ValueError(f"Opacity must be a number in [0, 1], got {self.opacity!r}")
        return self


def colormaps_for(sign: str) -> tuple[str, ...]:
    """The colour maps that read right for a sign: diverging for signed values."""
    return DIVERGING_COLORMAPS if sign == "all" else SEQUENTIAL_COLORMAPS


def display_scale(pixel_map: np.ndarray, sign: str, outlier_percent: float = 2.0) -> float:
    """The |value| drawn at full colour: the (100 - outlier_percent) percentile of the
    map's magnitudes after the sign is applied (as captum.attr.visualization does), so a few
    extreme pixels don't wash out the rest. 0 when the map is empty."""
    values = _signed(pixel_map, sign)
    magnitudes = np.abs(values)
    nonzero = magnitudes[magnitudes > 0]
    if nonzero.size == 0:
        return 0.0
    scale = float(np.percentile(magnitudes, 100 - outlier_percent))
    return scale if scale > 0 else float(nonzero.max())


def _signed(pixel_map: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.clip(pixel_map, 0, None)
    if sign == "absolute":
        return np.abs(pixel_map)
    if sign == "all":
        return pixel_map
    raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {sign!r}")


def normalized_map(pixel_map: np.ndarray, sign: str, outlier_percent: float = 2.0) -> np.ndarray:
    """The map after its sign, divided by `display_scale`: [0, 1] for positive/absolute,
    [-1, 1] for all."""
    values = _signed(pixel_map, sign)
    scale = display_scale(pixel_map, sign, outlier_percent)
    if scale == 0:
        return np.zeros_like(values, dtype=np.float64)  # nothing to show: the bare image
    low = -1.0 if sign == "all" else 0.0
    return np.clip(values / scale, low, 1.0)


def colorize(values: np.ndarray, colormap: str, signed: bool) -> np.ndarray:
    """(H, W) in [0, 1] (or [-1, 1] when signed, 0 in the middle) -> (H, W, 3) RGB in [0, 1]."""
    import matplotlib

    if colormap not in COLORMAPS:
        raise ValueError(f"Colour map must be one of {', '.join(COLORMAPS)}, got {colormap!r}")
    cmap = matplotlib.colormaps[colormap]
    position = (values + 1) / 2 if signed else values
    return cmap(position)[..., :3]


def render_overlay(image: np.ndarray, pixel_map: np.ndarray, sign: str = "positive",
                   colormap: str = "inferno", opacity: float = Display.opacity) -> np.ndarray:
    """Blend a coloured map over the image: (H, W, 3) uint8.

    Each pixel's blend weight is `opacity × |scaled value|`, so where the map is zero the
    photo shows through unchanged and the colour appears only where there is attribution.
    """
    Display(sign, colormap, opacity).checked()
    if image.shape[:2] != pixel_map.shape:
        raise ValueError(f"map {pixel_map.shape} and image {image.shape[:2]} differ in size")
    values = normalized_map(pixel_map, sign)
    colours = colorize(values, colormap, signed=(sign == "all"))  # (H, W, 3)
    alpha = (opacity * np.abs(values))[..., None]  # (H, W, 1)
    blended = (1 - alpha) * (image.astype(np.float64) / 255.0) + alpha * colours
    return np.clip(np.rint(blended * 255), 0, 255).astype(np.uint8)


def enlargement(side: int) -> int:
    """The whole factor a small overlay is enlarged by: the largest that keeps it within
    SMALL_OVERLAY_SIDE (1 above half of it: ImageNet's 224 px stay as they are)."""
    return max(1, SMALL_OVERLAY_SIDE // max(1, side))


def overlay_view(image: np.ndarray, pixel_map: np.ndarray, display: Display,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """What the page shows of a map: `render_overlay`, enlarged (nearest neighbour) when
    small, with the object's boundary (`mask`, (H, W) bool, where known) drawn over it in
    OUTLINE_COLOUR, one shown pixel wide: (H·f, W·f, 3) uint8."""
    from .training import draw_outline

    display = display.checked()
    overlay = render_overlay(image, pixel_map, display.sign, display.colormap, display.opacity)
    factor = enlargement(min(overlay.shape[:2]))
    overlay = overlay.repeat(factor, axis=0).repeat(factor, axis=1)
    if mask is None:
        return overlay
    if mask.shape != pixel_map.shape:
        raise ValueError(f"mask {mask.shape} and map {pixel_map.shape} differ in size")
    big_mask = mask.astype(bool).repeat(factor, axis=0).repeat(factor, axis=1)
    return draw_outline(overlay, big_mask, OUTLINE_COLOUR)


def colour_bar_html(pixel_map: np.ndarray | None, display: Display) -> str:
    """A colour bar for the overlay: the map's colours from its low to its high end, with
    the attribution values they stand for (sum over RGB of the raw map)."""
    display = display.checked()
    stops = COLOUR_STOPS[display.colormap]
    colours = ", ".join(f"rgb({r}, {g}, {b}) {100 * k / (len(stops) - 1):.0f}%"
                        for k, (r, g, b) in enumerate(stops))
    scale = 0.0 if pixel_map is None else display_scale(pixel_map, display.sign)
    signed = display.sign == "all"
    what = {"positive": "positive attribution", "absolute": "|attribution|",
            "all": "attribution (blue = against the class, red = for it)"}[display.sign]
    if pixel_map is None:
        ticks = ["low", "high"] if not signed else ["negative", "0", "positive"]
    elif signed:
        ticks = [f"−{scale:.2g}", "0", f"+{scale:.2g}"]
    else:
        ticks = ["0", f"{scale:.2g}"]
    tick_html = "".join(f"<span>{t}</span>" for t in ticks)
    return (
        '<div class="rx-colorbar" style="font-size: 0.8rem; color: var(--body-text-color-subdued);">'
        f'<div style="height: 12px; border-radius: 3px; background: linear-gradient(to right, {colours});"></div>'
        f'<div style="display: flex; justify-content: space-between;">{tick_html}</div>'
        f"<div>Colour: {what}, per pixel summed over RGB; full colour at the 98th percentile "
        f"of |value|, clipped above. Colour fades with the value, so the photo shows where "
        f"the map is 0. Opacity {display.opacity:g}.</div></div>")


@dataclass
class FeatureGrid:
    stage: str
    channels: int
    side: tuple[int, int]
    shown: list[int]  # channel indices, strongest first
    image: np.ndarray  # (H, W, 3) uint8 grid of tiles

    @property
    def caption(self) -> str:
        listed = ", ".join(f"#{c}" for c in self.shown)
        return (f"{self.stage}: {self.channels} channels at {self.side[0]}×{self.side[1]}; "
                f"strongest by mean activation: {listed}")


def feature_map_grids(model: Any, x: Any, channels: int = FEATURE_CHANNELS, tile: int = 64, columns: int = 4,
                      colormap: str = "viridis") -> list[FeatureGrid]:
    """For each stage, its `channels` strongest channels (mean activation) as a tile grid.

    Each tile is scaled to its own maximum: the grid shows *where* a channel fires; the
    caption says which channels they are.
    """
    import matplotlib
    import torch
    import torch.nn.functional as F

    cmap = matplotlib.colormaps[colormap]
    with torch.inference_mode():
        features = model.forward_features(x)  # list of (1, C_s, H_s, W_s)
    grids = []
    for name, feature in zip(model.stage_names, features):
        maps = feature[0].float()  # (C, h, w)
        count = min(channels, maps.shape[0])
        strongest = maps.mean(dim=(1, 2)).topk(count).indices  # (count,)
        chosen = maps[strongest]  # (count, h, w)
        tiles = F.interpolate(chosen[None], size=(tile, tile), mode="nearest")[0]  # (count, t, t)
        peak = tiles.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        tiles = (tiles.clamp_min(0) / peak).cpu().numpy()  # (count, t, t) in [0, 1]
        rows = math.ceil(count / columns)
        gap = 2
        canvas = np.full((rows * (tile + gap) - gap, min(count, columns) * (tile + gap) - gap, 3),
                         255, dtype=np.uint8)
        for index in range(count):
            r, c = divmod(index, columns)
            rgb = (cmap(tiles[index])[..., :3] * 255).astype(np.uint8)
            canvas[r * (tile + gap):r * (tile + gap) + tile,
                   c * (tile + gap):c * (tile + gap) + tile] = rgb
        grids.append(FeatureGrid(name, maps.shape[0], tuple(maps.shape[1:]),
                                 [int(i) for i in strongest], canvas))
    return grids


def deletion_figure(curves: Sequence[tuple[str, DeletionCurve]]):
    """Plotly: target probability vs share of pixels removed, one line per map."""
    from .plots import figure

    data = [{"type": "scatter", "x": (curve.fractions * 100).tolist(),
             "y": curve.probabilities.tolist(), "mode": "lines+markers",
             "name": f"{label} (AUC {curve.auc:.3g})",
             "hovertemplate": "%{x:.0f} % removed: p = %{y:.3g}<extra></extra>"}
            for label, curve in curves]
    return figure(data, {
        # Short: the chart can be 300 px wide; the summary explains the curve.
        "title": {"text": "Deletion curve (lower AUC = more faithful)", "font": {"size": 13}},
        "xaxis": {"title": {"text": "most attributed pixels removed first (%)"}},
        "yaxis": {"title": {"text": "target class probability"}, "rangemode": "tozero",
                  "tickformat": ".2g"},
        "height": 320, "legend": {"orientation": "h", "y": -0.3}})
