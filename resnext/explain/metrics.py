"""How good is an attribution map, measured against ground truth: plain functions on maps
`(N, H, W)` and bool masks `(N, H, W)` (torch tensors or numpy arrays), one value per image.

- `energy_in_mask`: the share of the map's *positive* attribution that lies inside the mask
  (the energy-based pointing game, Wang et al. 2020, Score-CAM Sec. 4.3). Negative values are
  evidence *against* the class, so they are not "energy"; a map with no positive value at
  all scores 0 (it points nowhere).
- `pointing_game`: 1 if the map's maximum lies inside the mask, or within `tolerance` pixels
  (Euclidean) of it (Zhang et al. 2016, 15 px at ImageNet size). Ties: when several pixels
  share the maximum, the score is the share of them that hit, i.e. the expected hit when
  the tie is broken uniformly at random. So a constant map scores exactly what a random
  map would (the mask's share), never a free 1.
- `marker_share`: `energy_in_mask` on the shortcut marker's pixels.
- `distractor_share`: `energy_in_mask` on the distractor shapes' pixels (shapes-distractors):
  the share of the positive map on objects that are not the label; 0 is right, the random
  map scores the distractors' area share (`random_baseline` of their masks).
- `random_baseline`: what a random map would score: the mask's share of the image
  (for the pointing game with a tolerance, the share of the widened mask).
- `perturbation_curves`: deletion and insertion curves (Petsiuk et al. 2018, RISE Sec. 4.1)
  for a whole batch, one forward per step for all images (chunked to bound memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .baselines import gaussian_blur
from .stopping import StopCheck, stop_if_asked


def as_maps(maps: Any, name: str = "maps") -> torch.Tensor:
    """(N, H, W) float64 tensor from a tensor or array; (H, W) is taken as one image."""
    tensor = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps)
    tensor = tensor.detach().cpu().to(torch.float64)
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dim() != 3:
        raise ValueError(f"{name} must be (N, H, W), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return tensor


def as_masks(masks: Any, like: torch.Tensor | None = None, name: str = "masks") -> torch.Tensor:
    """(N, H, W) bool tensor; checked against the maps' shape when given."""
    tensor = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    tensor = tensor.detach().cpu()
    if tensor.dim() == 2:
        tensor = tensor[None]
    if tensor.dtype != torch.bool:
        raise ValueError(f"{name} must be boolean, got {tensor.dtype}")
    if like is not None and tensor.shape != like.shape:
        raise ValueError(f"{name} {tuple(tensor.shape)} and maps {tuple(like.shape)} differ in shape")
    return tensor


def energy_in_mask(maps: Any, masks: Any) -> np.ndarray:
    """(N,) share of each map's positive attribution inside its mask; 0 without positives."""
    values = as_maps(maps)
    inside = as_masks(masks, values)
    positive = values.clamp_min(0)
    total = positive.sum(dim=(1, 2))  # (N,)
    in_mask = (positive * inside).sum(dim=(1, 2))  # (N,)
    share = torch.where(total > 0, in_mask / total.clamp_min(torch.finfo(torch.float64).tiny),
                        torch.zeros_like(total))
    return share.numpy()


def marker_share(maps: Any, marker_masks: Any) -> np.ndarray:
    """(N,) share of positive attribution on the shortcut marker (`energy_in_mask` on it)."""
    return energy_in_mask(maps, marker_masks)


def distractor_share(maps: Any, distractor_masks: Any) -> np.ndarray:
    """(N,) share of positive attribution on the distractors (`energy_in_mask` on their
    masks, so the same convention: negative values are not energy, a map with no positive
    value scores 0); a map without information scores `random_baseline(distractor_masks)`."""
    return energy_in_mask(maps, distractor_masks)


def _disk(radius: int) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius ** 2).to(torch.float64)


def widen(masks: Any, tolerance: int) -> torch.Tensor:
    """Masks grown by `tolerance` pixels: every pixel within that Euclidean distance of the
    mask (a binary dilation by a disk)."""
    inside = as_masks(masks)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or tolerance < 0:
        raise ValueError(f"tolerance must be a whole number of pixels >= 0, got {tolerance!r}")
    if tolerance == 0:
        return inside
    kernel = _disk(tolerance)[None, None]  # (1, 1, 2t+1, 2t+1)
    hits = F.conv2d(inside[:, None].to(torch.float64), kernel, padding=tolerance)  # (N, 1, H, W)
    return hits[:, 0] > 0.5


def pointing_game(maps: Any, masks: Any, tolerance: int = 0) -> np.ndarray:
    """(N,) 1.0 where the map's maximum lies in the mask (or within `tolerance` px of it).

    Several pixels tied at the maximum score the share of them that hit (the expected hit of
    a uniformly random tie-break), so a constant map scores the (widened) mask's share.
    """
    values = as_maps(maps)
    target = widen(as_masks(masks, values), tolerance)
    peak = values.amax(dim=(1, 2), keepdim=True)
    at_peak = values == peak  # (N, H, W)
    hits = (at_peak & target).sum(dim=(1, 2)).to(torch.float64)
    return (hits / at_peak.sum(dim=(1, 2))).numpy()


def random_baseline(masks: Any, tolerance: int = 0) -> np.ndarray:
    """(N,) what a map with no information scores: the (widened) mask's share of the image.

    This is the expected `energy_in_mask` of a map of i.i.d. positive values and the
    expected `pointing_game` of a map whose maximum falls on a uniformly random pixel.
    """
    target = widen(masks, tolerance)
    return target.to(torch.float64).mean(dim=(1, 2)).numpy()


# Deletion and insertion -----------------------------------------------------------------

@dataclass
class PerturbationCurves:
    """Target probability as pixels are removed (deletion) or revealed (insertion), most
    attributed first. Lower deletion AUC and higher insertion AUC mean a more faithful map."""

    fractions: np.ndarray  # (steps + 1,) share of pixels removed / inserted, 0 .. 1
    deletion: np.ndarray  # (N, steps + 1) target probability
    insertion: np.ndarray  # (N, steps + 1)

    @property
    def deletion_auc(self) -> np.ndarray:  # (N,)
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:  # (N,)
        return np.trapezoid(self.insertion, self.fractions, axis=1)


def pixel_ranks(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N, H, W) int64: when each pixel goes, 0 = the most attributed. Ties (e.g. the zeros of
    a ReLU'd Grad-CAM) are broken in one fixed random order, not in raster order, which would
    sweep the image top-down and favour whatever lies at the top. The library's one ranking:
    the deletion and insertion curves, one image's deletion curve (`single.deletion_curve`)
    and the sanity check's top-k overlap use it."""
    count, height, width = maps.shape
    return flat_ranks(maps.reshape(count, height * width), seed).reshape(count, height, width)


def flat_ranks(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """`pixel_ranks` of (N, P) values: (N, P) int64, 0 = the largest, ties in the random
    order drawn from `seed` (the same order for every row)."""
    count, pixels = values.shape
    generator = torch.Generator().manual_seed(seed)
    shuffle = torch.randperm(pixels, generator=generator).to(values.device)  # (P,)
    # Stable sort of the shuffled values: equal values keep the random order.
    order = shuffle[torch.sort(values[:, shuffle], dim=1, descending=True, stable=True).indices]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=values.device).expand(count, pixels))
    return ranks


def perturbation_curves(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                        maps: Any, targets: torch.Tensor, *, steps: int = 10,
                        fill: float = 0.0, blur_sigma: float | None = None,
                        max_batch: int = 256, seed: int = 0,
                        ends: "CurveEnds | None" = None,
                        should_stop: StopCheck = None) -> PerturbationCurves:
    """Deletion and insertion curves of a batch (Petsiuk et al. 2018, RISE).

    images: (N, 3, H, W) normalised; maps: (N, H, W); targets: (N,) class indices.
    Deletion sets the removed pixels to `fill` in normalised space (0 = the dataset's mean
    colour, neither dark nor bright for the network). Insertion starts from a blurred copy
    (`baselines.gaussian_blur`, sigma = `blur_sigma`, None: the library's one rule, an eighth
    of the side: the shape is gone, the colours stay, as in IG's blurred baseline) and puts the sharp pixels back, most attributed first. Step k has round(k/steps·P)
    pixels changed; each step is one forward per chunk (`max_batch` images in all, the
    deleted and inserted copies together). The model must be in eval mode.
    `ends` (from `curve_ends`): the first and last points, which no map changes (the image,
    the all-filled image, the blurred image), computed once for every method.
    """
    values = as_maps(maps)
    count, height, width = values.shape
    if images.shape[0] != count or images.shape[-2:] != (height, width):
        raise ValueError(f"images {tuple(images.shape)} and maps {tuple(values.shape)} do not match")
    ranks = pixel_ranks(values, seed).to(images.device)  # (N, H, W)
    pixels = height * width
    changed = [round(pixels * k / steps) for k in range(steps + 1)]
    deletion = torch.empty(count, steps + 1, dtype=torch.float64)
    insertion = torch.empty(count, steps + 1, dtype=torch.float64)
    inner = range(steps + 1)
    if ends is not None:
        if ends.original.shape[0] != count:
            raise ValueError(f"curve ends are for {ends.original.shape[0]} images, not {count}")
        deletion[:, 0], deletion[:, steps] = ends.original, ends.filled
        insertion[:, 0], insertion[:, steps] = ends.blurred, ends.original
        inner = range(1, steps)
    chunk = max(1, max_batch // 2)  # deleted and inserted copies share one forward
    with torch.no_grad():
        for start in range(0, count, chunk):
            x = images[start:start + chunk]
            rank = ranks[start:start + chunk, None]  # (B, 1, H, W)
            target = targets[start:start + chunk].to(images.device)
            blurred = gaussian_blur(x, blur_sigma)
            for k in inner:
                number = changed[k]
                stop_if_asked(should_stop)
                first = rank < number  # (B, 1, H, W): the `number` most attributed pixels
                removed = torch.where(first, torch.full_like(x, fill), x)
                inserted = torch.where(first, x, blurred)
                probs = torch.softmax(model(torch.cat([removed, inserted])).float(), dim=1)
                rows = torch.arange(x.shape[0], device=probs.device)
                deletion[start:start + chunk, k] = probs[:x.shape[0]][rows, target].double().cpu()
                insertion[start:start + chunk, k] = probs[x.shape[0]:][rows, target].double().cpu()
    fractions = np.asarray(changed, dtype=np.float64) / pixels
    return PerturbationCurves(fractions, deletion.numpy(), insertion.numpy())


@dataclass
class CurveEnds:
    """Target probabilities every map's curves share: (N,) each, float64."""

    original: torch.Tensor  # the image itself: deletion's start, insertion's end
    filled: torch.Tensor  # every pixel removed: deletion's end
    blurred: torch.Tensor  # insertion's start


def curve_ends(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               targets: torch.Tensor, *, fill: float = 0.0, blur_sigma: float | None = None,
               max_batch: int = 256) -> CurveEnds:
    """The first and last points of the deletion and insertion curves, once for all maps."""
    parts: dict[str, list[torch.Tensor]] = {"original": [], "filled": [], "blurred": []}
    chunk = max(1, max_batch // 3)
    with torch.no_grad():
        for start in range(0, images.shape[0], chunk):
            x = images[start:start + chunk]
            target = targets[start:start + chunk].to(images.device)
            probs = torch.softmax(model(torch.cat([x, torch.full_like(x, fill),
                                                   gaussian_blur(x, blur_sigma)])).float(), dim=1)
            rows = torch.arange(x.shape[0], device=probs.device)
            for i, name in enumerate(parts):
                parts[name].append(probs[i * x.shape[0]:(i + 1) * x.shape[0]][rows, target].double().cpu())
    return CurveEnds(**{name: torch.cat(values) for name, values in parts.items()})
