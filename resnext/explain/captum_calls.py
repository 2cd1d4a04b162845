"""The Captum call for each attribution method, written once.

Both attribution paths come through here: the Attributions tab's single image
(`single.captum_attribute`) and evaluation's batches (`batch.attribute_batch`).
Each resolves its own parameters first (baselines, defaults, chunking, seeds) and
post-processes after (channel reductions, numpy); this module only makes the call.

Torch and Captum are imported inside the function, so importing this module costs nothing
at the app's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Integrated Gradients' quadrature (Sundararajan et al. 2017 use a Riemann sum): Gauss-Legendre
# nodes reach a small completeness gap in far fewer steps. Captum's default, named here so
# both paths say which rule they run.
IG_RULE = "gausslegendre"


@dataclass(frozen=True)
class CaptumParameters:
    """A call's parameters, already resolved by the caller (see `captum_call`)."""

    baselines: torch.Tensor | None = None
    n_steps: int = 50
    internal_batch_size: int | None = None
    n_samples: int = 1
    samples_batch_size: int | None = None
    stdev: float = 0.0
    smoothgrad_over: str = "saliency"
    window: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    perturbations_per_eval: int = 1
    layer: Any = None
    return_delta: bool = False


Result = tuple["torch.Tensor", "torch.Tensor | None"]


def captum_call(model: Any, method: str, x: torch.Tensor, target: int | torch.Tensor,
                **parameters: Any) -> Result:
    """One Captum call: (raw attributions, convergence delta or None).

    The attributions have x's shape (N, C, H, W), except Grad-CAM's: its one-channel map
    (N, 1, H, W), upsampled to x's size. Parameters (`CaptumParameters`' fields) are used
    as given, already resolved: `x` with requires_grad (detached for occlusion under
    no_grad); `target` an int or one class per image; `baselines` the reference(s) (IG,
    DeepLift, Occlusion, SmoothGrad over IG), or GradientShap's reference distribution;
    `n_steps`/`internal_batch_size` IG's; `n_samples`/`stdev` the noise methods' (GradientShap
    batches all its samples in one call: callers chunk n_samples to bound memory);
    `samples_batch_size` SmoothGrad's noisy copies per pass; `window`/`strides` Occlusion's
    sliding window shapes (C, h, w) and `perturbations_per_eval`; `layer` Grad-CAM's module.
    `return_delta` asks IG and DeepLift for their convergence delta; the others have none.
    """
    if method not in _CALLS:
        raise ValueError(f"unknown method {method!r}")
    return _CALLS[method](model, x, target, CaptumParameters(**parameters))


def _saliency(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import Saliency

    # Simonyan et al. 2014; signed (abs=False): the caller chooses the sign (the tab's sign
    # control; evaluation takes magnitudes).
    return Saliency(model).attribute(x, target=target, abs=False), None


def _integrated_gradients(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters
                          ) -> Result:
    from captum.attr import IntegratedGradients

    result = IntegratedGradients(model).attribute(
        x, baselines=p.baselines, target=target, n_steps=p.n_steps, method=IG_RULE,
        internal_batch_size=p.internal_batch_size, return_convergence_delta=p.return_delta)
    return result if p.return_delta else (result, None)


def _gradient_shap(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import GradientShap

    # Lundberg & Lee 2017 (expected gradients): a baseline *distribution*.
    return GradientShap(model).attribute(x, baselines=p.baselines, target=target,
                                         n_samples=p.n_samples, stdevs=p.stdev), None


def _deeplift(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import DeepLift

    # Shrikumar et al. 2017 (Rescale rule); its delta checks summation-to-delta.
    result = DeepLift(model).attribute(x, baselines=p.baselines, target=target,
                                       return_convergence_delta=p.return_delta)
    return result if p.return_delta else (result, None)


def _smoothgrad(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    # Smilkov et al. 2017: the mean of a method's maps over noisy copies of the input.
    noise = dict(nt_type="smoothgrad", nt_samples=p.n_samples,
                 nt_samples_batch_size=p.samples_batch_size, stdevs=p.stdev, target=target)
    if p.smoothgrad_over == "saliency":
        return NoiseTunnel(Saliency(model)).attribute(x, abs=False, **noise), None
    if p.smoothgrad_over == "integrated_gradients":
        return NoiseTunnel(IntegratedGradients(model)).attribute(
            x, baselines=p.baselines, n_steps=p.n_steps, method=IG_RULE,
            internal_batch_size=p.internal_batch_size, **noise), None
    raise ValueError(f"SmoothGrad over {p.smoothgrad_over!r}: one of saliency, "
                     f"integrated_gradients")


def _occlusion(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import Occlusion

    # Zeiler & Fergus 2014: the score's drop when a window is replaced by the baseline.
    return Occlusion(model).attribute(
        x, sliding_window_shapes=p.window, strides=p.strides, baselines=p.baselines,
        target=target, perturbations_per_eval=p.perturbations_per_eval), None


def _gradcam(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import LayerAttribution, LayerGradCam

    # Selvaraju et al. 2017, Eq. 2: ReLU keeps the features with a positive influence.
    cam = LayerGradCam(model, p.layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]),
                                        interpolate_mode="bilinear"), None


def _guided_gradcam(model: Any, x: torch.Tensor, target: Any, p: CaptumParameters) -> Result:
    from captum.attr import GuidedGradCam

    return GuidedGradCam(model, p.layer).attribute(x, target=target,
                                                   interpolate_mode="bilinear"), None


_CALLS = {"saliency": _saliency, "integrated_gradients": _integrated_gradients,
          "gradient_shap": _gradient_shap, "deeplift": _deeplift, "smoothgrad": _smoothgrad,
          "occlusion": _occlusion, "gradcam": _gradcam, "guided_gradcam": _guided_gradcam}
