"""Reference images, written once: the baselines of Integrated Gradients, DeepLift,
GradientShap, Occlusion's fill and SmoothGrad over IG (one image and a batch alike), and
the blurred start of the insertion curve.

Images are normalised (N, C, H, W) tensors: `(pixel - mean) / std` per channel, with the
mean and std the network was trained with. So "black" is `(0 - mean) / std`, "mean" (the
dataset's mean colour) is all zeros, and "noise" is uniform pixels in [0, 1] normalised
the same way.

One blur, one sigma rule. IG's blurred baseline (Sturmfels et al., Distill 2020,
"Visualizing the impact of feature attribution baselines") and the insertion curve's start
(Petsiuk et al. 2018, RISE Sec. 4.1) both want an image whose *shape* is gone and whose
*colours* stay: a reference that still shows the object lets IG attribute little to it,
and an insertion curve that starts from a recognisable image has nothing to rise to. The
evaluation used an eighth of the shorter side, the Attributions tab a twentieth, so
"Integrated Gradients (blurred)" was two methods; the eighth stays (4 px on the 32-px shapes
images, whose objects are about 10 px across). Measured with tools/compare_explain_rules.py
on a shapes run at 92.7 % test accuracy (12 test images): both sigmas take the true class's
probability from 0.69 to chance (0.17), but IG's maps from the side/8 reference are the more
faithful (deletion AUC 0.191 at side/20, 0.166 at side/8; lower is better).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch

BASELINE_KINDS = ("black", "blurred", "mean", "noise")
BLUR_SIDE_DIVISOR = 8  # sigma = shorter side / 8 (see the module's docstring)


def blur_sigma(height: int, width: int) -> float:
    """The blur's default sigma in pixels for an image of this size (at least 1 px)."""
    return max(1.0, min(height, width) / BLUR_SIDE_DIVISOR)


def gaussian_blur(images: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W), each channel on its own: two 1-D passes (the Gaussian
    is separable) over reflect-padded edges, so border pixels are not darkened by zeros.

    The kernel reaches 3 sigma each side (99.7 % of its mass), cut to the image's side - 1
    (the most reflect padding allows). `sigma` None: `blur_sigma` of the image's size.
    """
    import torch
    import torch.nn.functional as F

    height, width = images.shape[-2:]
    sigma = blur_sigma(height, width) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"blur sigma must be a positive number of pixels, got {sigma!r}")
    radius = min(max(1, int(3 * sigma)), height - 1, width - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()  # (2r+1,)
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # (C, 1, 1, 2r+1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # (C, 1, 2r+1, 1)
    x = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), horizontal,
                 groups=channels)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), vertical, groups=channels)


def channel_values(values: Sequence[float], like: torch.Tensor, name: str) -> torch.Tensor:
    """Per-channel values (a mean or std) as a (1, C, 1, 1) tensor like `like`."""
    import torch

    tensor = torch.as_tensor(tuple(values), dtype=like.dtype, device=like.device).reshape(1, -1, 1, 1)
    if tensor.shape[1] != like.shape[1]:
        raise ValueError(f"{name} has {tensor.shape[1]} values; the images have "
                         f"{like.shape[1]} channels")
    return tensor


def make_baseline(images: torch.Tensor, kind: str, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None, *, sigma: float | None = None,
                  seed: int = 0) -> torch.Tensor:
    """A reference like `images` (N, C, H, W), normalised as they are by `mean`/`std`.

    kind: "black"; "blurred" (`gaussian_blur`, `sigma` None: the default rule); "mean" (the
    dataset's mean colour: zeros); "noise" (uniform pixels drawn from `seed`, without
    touching the global random state). Black and noise need the mean and std.
    """
    import torch

    if kind == "mean":
        return torch.zeros_like(images)
    if kind == "blurred":
        return gaussian_blur(images, sigma)
    if kind not in ("black", "noise"):
        raise ValueError(f"baseline must be one of {', '.join(BASELINE_KINDS)}, got {kind!r}")
    if mean is None or std is None:
        raise ValueError(f"the {kind} baseline needs the mean and std the images were "
                         f"normalised with")
    mean_t = channel_values(mean, images, "mean")
    std_t = channel_values(std, images, "std")
    if kind == "black":
        return (-mean_t / std_t).expand_as(images).contiguous()
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(tuple(images.shape), generator=generator, dtype=torch.float32)
    return (pixels.to(images.device, images.dtype) - mean_t) / std_t
