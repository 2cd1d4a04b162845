"""Attribution maps for a whole batch of images at once: `attribute_batch` -> (N, H, W).

The Attributions tab explains one image; evaluation needs hundreds, so every Captum call
here takes the batch (targets as a tensor, one per image) and chunks it so that one forward
never holds more than `max_batch` images (an Integrated Gradients chunk of B images runs
B * n_steps of them). Maps come back reduced to one value per pixel:

| method | reduction over the 3 colour channels |
|---|---|
| saliency, smoothgrad, guided_gradcam | sum of absolute values: a raw gradient's sign says which way a pixel should move to raise the score, not whether it is evidence (Simonyan et al. 2014 take magnitudes; Smilkov et al. 2017 show absolute SmoothGrad) |
| integrated_gradients, gradient_shap, deeplift, occlusion | signed sum: these satisfy completeness (the channels' attributions add up to the score's change), so a pixel's total is its contribution; positive = evidence for the class |
| gradcam | the one-channel map of the last stage (ReLU'd, Selvaraju et al. 2017 Eq. 2), upsampled bilinearly to the input size |
| random | uniform noise (a reference row: what a map without information scores) |

Images are normalised with the dataset's mean/std, so "black" is (0 - mean) / std per
channel and "mean" is all zeros (the dataset's mean colour). Callers must not run two
attributions on one model at once: Captum hooks the model's modules.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .baselines import make_baseline
from .stopping import StopCheck, stop_if_asked

from .names import (  # noqa: F401  (re-exported)
    BASE_METHODS,
    DEFAULT_ROWS,
    IG_BASELINES,
    METHOD_ROWS,
    REDUCTIONS,
    ROW_LABELS,
)


@dataclass(frozen=True)
class BatchSettings:
    """The few parameters of the batched methods, sized for 32-px images on a CPU."""

    # Integrated Gradients (Sundararajan et al. 2017) with Gauss-Legendre nodes, which reach
    # a small completeness gap in far fewer steps than a Riemann sum.
    n_steps: int = 16
    n_samples: int = 8  # SmoothGrad and GradientShap noise samples
    # SmoothGrad (Smilkov et al. 2017): noise of 10-20 % of the input's range.
    noise_level: float = 0.15
    occlusion_window: int = 0  # square patch side, px; 0 = a quarter of the image side
    occlusion_stride: int = 0  # 0 = half the window
    blur_sigma: float = 0.0  # the blur's sigma, px; 0 = the library's rule (baselines.blur_sigma)
    layer: str = ""  # Grad-CAM's layer; "" = the last stage (Selvaraju et al.'s choice)

    def checked(self) -> "BatchSettings":
        from ..validation import whole_number

        values = {
            "n_steps": whole_number("n_steps", self.n_steps, 2, 512),
            "n_samples": whole_number("n_samples", self.n_samples, 1, 256),
            "occlusion_window": whole_number("occlusion_window", self.occlusion_window, 0, 4096),
            "occlusion_stride": whole_number("occlusion_stride", self.occlusion_stride, 0, 4096),
        }
        if not (isinstance(self.noise_level, (int, float)) and 0 < self.noise_level <= 1):
            raise ValueError(f"noise level must be in (0, 1], got {self.noise_level!r}")
        if not (isinstance(self.blur_sigma, (int, float)) and 0 <= self.blur_sigma <= 1000):
            raise ValueError(f"blur sigma must be in [0, 1000] px, got {self.blur_sigma!r}")
        return replace(self, **values)


def resolve_row(method: str, baseline: str | None = None) -> tuple[str, str]:
    """(base method, baseline) for a row name ("integrated_gradients_blurred") or a base
    method with an explicit baseline."""
    if method in METHOD_ROWS and baseline is None:
        return METHOD_ROWS[method]
    if method in BASE_METHODS:
        default = METHOD_ROWS.get(method, (method, ""))[1]
        if method == "integrated_gradients":
            default = "black"
        chosen = default if baseline is None else baseline
        if method == "integrated_gradients" and chosen not in IG_BASELINES:
            raise ValueError(f"Integrated Gradients' baseline must be one of "
                             f"{', '.join(IG_BASELINES)}, got {chosen!r}")
        return method, chosen
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_ROWS)}")


def _shap_references(images: torch.Tensor, mean: Sequence[float] | None,
                     std: Sequence[float] | None, seed: int) -> torch.Tensor:
    """GradientShap's baseline distribution (Lundberg & Lee 2017 draw from a background set):
    black, the mean colour and six uniform-noise images, the same for every image, since
    Captum samples references for the whole batch."""
    one = images[:1]
    if mean is None or std is None:
        raise ValueError("GradientShap's references need the dataset's mean and std")
    noise = make_baseline(one.expand(6, *one.shape[1:]), "noise", mean, std, seed=seed)
    return torch.cat([make_baseline(one, "black", mean, std), make_baseline(one, "mean"), noise])


# A module's hook tables: a copy of a model another request is attributing must not inherit
# that request's Captum hooks or its progress/cancel hook.
_HOOK_TABLES = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
                "_backward_pre_hooks")


def private_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of `model` without any of its forward/backward hooks.

    The copy is made while the caller holds the model's lock (a few milliseconds for a small
    network); the work then runs on the copy, so a long evaluation never blocks the app's
    other users of that model.
    """
    memo: dict[int, Any] = {}
    for module in model.modules():
        for table in _HOOK_TABLES:
            hooks = module.__dict__.get(table)
            if hooks is not None:
                memo[id(hooks)] = type(hooks)()  # the copy gets an empty table
    return copy.deepcopy(model, memo)


@contextlib.contextmanager
def seeded_randomness(seed: int) -> Iterator[Callable[[int], None]]:
    """The global generators Captum draws from, seeded for the block and put back after:
    torch's (SmoothGrad's and GradientShap's noise) and numpy's (GradientShap's points on the
    path, `np.random.uniform`, and its reference picks, `np.random.choice`: without a numpy
    seed GradientShap's maps changed from one process to the next). Yields `reseed(offset)`,
    which seeds both with `seed + offset` (one offset per chunk). numpy's generator is the
    process's: the block holds `resnext.model.global_rng`, so other seeded work waits."""
    from ..model import global_rng

    def reseed(offset: int = 0) -> None:
        torch.manual_seed(seed + offset)
        np.random.seed((seed + offset) % 2 ** 32)

    with global_rng():  # held, so numpy's generator is this block's alone as well
        numpy_state = np.random.get_state()
        try:
            reseed(0)
            yield reseed
        finally:
            np.random.set_state(numpy_state)


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm's running statistics) for the duration; the old mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _chunk_size(method: str, settings: BatchSettings, max_batch: int) -> int:
    """Images per chunk so that one forward holds at most `max_batch` images."""
    expansion = {"integrated_gradients": settings.n_steps, "gradient_shap": settings.n_samples,
                 "smoothgrad": settings.n_samples, "deeplift": 2}.get(method, 1)
    return max(1, max_batch // expansion)


def _attribute_chunk(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, method: str,
                     baseline: str, settings: BatchSettings, mean: Sequence[float] | None,
                     std: Sequence[float] | None, max_batch: int, seed: int) -> torch.Tensor:
    """One chunk through Captum: (B, H, W) float32."""
    from .single import resolve_layer  # Grad-CAM's layer: by name, or the last stage
    from .captum_calls import captum_call

    s = settings
    height, width = x.shape[-2:]
    x = x.detach().requires_grad_(True)
    if method == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.rand((x.shape[0], height, width), generator=generator).to(x.device)
    # SmoothGrad's and GradientShap's noise: a fraction of the chunk's range.
    stdev = s.noise_level * float(x.detach().max() - x.detach().min())
    if method in ("saliency", "smoothgrad", "guided_gradcam"):
        # Magnitudes (see the module's table): a raw gradient's sign is not evidence.
        layer = resolve_layer(model, s.layer) if method == "guided_gradcam" else None
        values, _ = captum_call(model, method, x, target, n_samples=s.n_samples,
                                samples_batch_size=s.n_samples, stdev=stdev, layer=layer)
        return values.abs().sum(1)
    if method == "integrated_gradients":
        reference = make_baseline(x.detach(), baseline, mean, std, sigma=s.blur_sigma or None)
        values, _ = captum_call(model, method, x, target, baselines=reference,
                                n_steps=s.n_steps, internal_batch_size=max(1, max_batch))
        return values.sum(1)
    if method == "gradient_shap":
        references = _shap_references(x.detach(), mean, std, seed)
        values, _ = captum_call(model, method, x, target, baselines=references,
                                n_samples=s.n_samples, stdev=stdev)
        return values.sum(1)
    if method == "deeplift":
        # Shrikumar et al. 2017, Rescale rule; reference = the dataset's mean colour.
        reference = make_baseline(x.detach(), baseline or "mean", mean, std)
        values, _ = captum_call(model, method, x, target, baselines=reference)
        return values.sum(1)
    if method == "occlusion":
        window = s.occlusion_window or max(1, min(height, width) // 4)
        window = min(window, height, width)
        stride = s.occlusion_stride or max(1, window // 2)
        reference = make_baseline(x.detach(), baseline or "mean", mean, std)
        channels = x.shape[1]
        # Occlusion needs only forwards: no graph kept.
        with torch.no_grad():
            values, _ = captum_call(model, method, x.detach(), target, baselines=reference,
                                    window=(channels, window, window),
                                    strides=(channels, stride, stride),
                                    perturbations_per_eval=max(1, max_batch // x.shape[0]))
        return values.sum(1)
    if method == "gradcam":
        cam, _ = captum_call(model, method, x, target, layer=resolve_layer(model, s.layer))
        return cam[:, 0]
    raise ValueError(f"unknown method {method!r}")


def attribute_batch(model: torch.nn.Module, images: torch.Tensor, targets: Any, method: str,
                    *, baseline: str | None = None, settings: BatchSettings | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    max_batch: int = 64, seed: int = 0,
                    on_chunk: Callable[[int], None] | None = None,
                    should_stop: StopCheck = None) -> torch.Tensor:
    """Maps (N, H, W) float32 of `method` (a row name of METHOD_ROWS or a base method) for
    normalised images (N, 3, H, W) and their target classes (N,).

    `mean`/`std` are the normalisation's (needed by the black baseline and GradientShap).
    Noise (SmoothGrad, GradientShap, random) is drawn from `seed`, chunk by chunk, without
    touching the global generators' states (`seeded_randomness`). `on_chunk(images_done)` after each chunk;
    `should_stop()` is asked before each chunk; yes raises `stopping.Stopped`.
    """
    base, chosen = resolve_row(method, baseline)
    settings = (settings or BatchSettings()).checked()
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1).to(images.device)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {targets.shape[0]} targets")
    count = images.shape[0]
    chunk = _chunk_size(base, settings, max_batch)
    parts = []
    with eval_mode(model), torch.enable_grad(), seeded_randomness(seed) as reseed, \
            warnings.catch_warnings():
        # Captum warns on every call that it hooks ReLUs (guided backprop): known, harmless.
        warnings.filterwarnings("ignore", message=".*hooks.*", category=UserWarning)
        for index, start in enumerate(range(0, count, chunk)):
            stop_if_asked(should_stop)
            reseed(index)
            x = images[start:start + chunk]
            maps = _attribute_chunk(model, x, targets[start:start + chunk], base, chosen,
                                    settings, mean, std, max_batch, seed + index)
            parts.append(maps.detach().float().cpu())
            if on_chunk is not None:
                on_chunk(min(start + chunk, count))
    if not parts:
        return torch.zeros((0,) + tuple(images.shape[-2:]))
    return torch.cat(parts)
