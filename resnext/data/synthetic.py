"""`shapes`: a generated dataset whose ground truth is known pixel by pixel.

Each image holds one shape on a textured background, plus a distractor blob. Only the
shape decides the class: its colour, size, position and rotation, the background's colours
and stripes, and the blob are drawn at random independently of the label. `masks` marks
the shape's pixels, so attribution maps can be scored against where the evidence really is.

With `shortcut=p`, a small square marker sits in the top-left corner. In the training
split its colour is the class's colour with probability p (else a random class colour); in
the test split always random. A network that learns the marker instead of the shape does
worse on the test split, and `marker_masks` shows where it looked.

`shapes_distractors` (the registry's shapes-distractors) is the harder setting: the labelled
shape shares the image with 1-3 smaller shapes of *other* classes, each of a different
class, none touching it or each other (their pixels never overlap). The label is the class
of the **largest** shape. Why size and not a colour: a colour rule would let the network
find the target by its colour and then read its outline, so its maps would say little about
looking at the right object among look-alikes; size is a rule a person reads at a glance,
carries no colour shortcut (every shape's colour follows the same random rule), and suits a
CNN: a distractor's radius is at most `DISTRACTOR_SCALE[1]` = 0.55 of the target's, so it
covers less area than the target whatever the two classes (the widest distractor, a disc,
0.95 r^2, against the thinnest target, a bar, 1.12 r^2; the same class 1 / 0.55^2 = 3.3
times less), and class evidence summed over space (global average pooling) already favours
the target. `distractor_masks` marks the distractors' pixels (disjoint from `masks`), so a
map that looks at a distractor is measurably wrong (`resnext.explain.distractor_share`).

Everything is generated on tensors a chunk of images at a time (no per-image loop), from a
`torch.Generator` seeded by `seed`: the same arguments give the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..validation import SEED_RANGE, whole_number
from .registry import DATASETS, IMAGE_SIZE_RANGE, IMAGES_RANGE, SHAPE_CLASSES as CLASSES
from .tensors import DatasetPair, ImageTensors, channel_stats

# Marker colours, one per class: far apart so that a 2x2 patch tells them apart.
MARKER_COLOURS = torch.tensor([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
    [1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0],
])
# shapes-distractors: the target's radius (a share of the side): smaller than shapes' 0.22-0.36
# so that three distractors fit beside it; a distractor's radius as a share of the target's
# (the target is always the largest shape); how many distractors (1-3, uniform).
TARGET_RADIUS = (0.2, 0.28)
DISTRACTOR_SCALE = (0.35, 0.55)
DISTRACTORS = (1, 3)
# How far each class's shape reaches from its centre, in radii (the square's corner
# 0.8 * sqrt 2, the cross's and bar's arm ends; discs, rings, triangles 1): shapes whose
# circles of this reach keep a pixel apart share no pixel.
REACH = torch.tensor([1.0, 0.8 * math.sqrt(2.0), 1.0, math.hypot(1.0, 0.3), 1.0,
                      math.hypot(1.0, 0.28)])
# Candidate places tried per distractor. With distractors' centres at least half a radius
# inside the image (they may be cut by the border; the target is kept 0.9 radii inside, as
# in shapes), 12 images in 50,000 got fewer distractors than drawn and none got none
# (tests/test_distractors.py counts them).
_PLACES = 128
# Images generated per chunk at 32 px: bounds the temporary float tensors to ~100 MB.
_CHUNK_PIXELS = 2048 * 32 * 32


_SIZES, _SIDE = DATASETS["shapes"].sizes, DATASETS["shapes"].image_size  # the defaults
# The registry's name of the distractor variant (written once, there).
_DISTRACTORS_NAME = next(name for name, item in DATASETS.items() if item.distractors)


def shapes(n_train: int = _SIZES[0], n_test: int = _SIZES[1], image_size: int = _SIDE,
           seed: int = 0, shortcut: float | None = None) -> DatasetPair:
    """The shapes dataset: `.train`, `.test` (with `.masks`), `.classes`, `.mean`, `.std`."""
    n_train, n_test, image_size, seed = _checked(n_train, n_test, image_size, seed)
    if shortcut is not None:
        if isinstance(shortcut, bool) or not isinstance(shortcut, (int, float)) or not (
                0.0 <= float(shortcut) <= 1.0):
            raise ValueError(f"shortcut must be a probability in [0, 1] or None, got {shortcut!r}")
        shortcut = float(shortcut)
    # Separate streams per split: the test split does not change with n_train.
    train = _generate(n_train, image_size, _generator(seed, 0), shortcut, train=True)
    test = _generate(n_test, image_size, _generator(seed, 1), shortcut, train=False)
    mean, std = channel_stats(train.images)
    name = "shapes" if shortcut is None else "shapes-shortcut"
    spec = {"name": name, "image_size": image_size,
            "sizes": {"train": n_train, "test": n_test}, "seed": seed, "shortcut": shortcut}
    return DatasetPair(name, train, test, CLASSES, mean, std, image_size, spec)


def shapes_distractors(n_train: int = _SIZES[0], n_test: int = _SIZES[1],
                       image_size: int = _SIDE, seed: int = 0) -> DatasetPair:
    """shapes-distractors: the largest shape is the label, 1-3 smaller shapes of other
    classes distract (see the module's docstring); the splits carry `.masks` (the target,
    as in `shapes`) and `.distractor_masks` (the union of the distractors' pixels)."""
    n_train, n_test, image_size, seed = _checked(n_train, n_test, image_size, seed)
    train = _generate(n_train, image_size, _generator(seed, 0), None, True, distractors=True)
    test = _generate(n_test, image_size, _generator(seed, 1), None, False, distractors=True)
    mean, std = channel_stats(train.images)
    spec = {"name": _DISTRACTORS_NAME, "image_size": image_size,
            "sizes": {"train": n_train, "test": n_test}, "seed": seed}
    return DatasetPair(_DISTRACTORS_NAME, train, test, CLASSES, mean, std, image_size, spec)


def _checked(n_train: Any, n_test: Any, image_size: Any, seed: Any
             ) -> tuple[int, int, int, int]:
    return (whole_number("n_train", n_train, *IMAGES_RANGE),
            whole_number("n_test", n_test, *IMAGES_RANGE),
            whole_number("image_size", image_size, *IMAGE_SIZE_RANGE),
            whole_number("seed", seed, *SEED_RANGE))


def _generator(seed: int, split: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 2 + split)


def _generate(count: int, size: int, generator: torch.Generator, shortcut: float | None,
              train: bool, distractors: bool = False) -> ImageTensors:
    images = torch.empty(count, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(count, size, size, dtype=torch.bool)
    marker_masks = marker_labels = distractor_masks = None
    if shortcut is not None:
        marker_masks = torch.zeros(count, size, size, dtype=torch.bool)
        marker_labels = torch.zeros(count, dtype=torch.int64)
    if distractors:
        distractor_masks = torch.empty(count, size, size, dtype=torch.bool)
    # Balanced classes in a random order.
    labels = (torch.arange(count) % len(CLASSES))[torch.randperm(count, generator=generator)]
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        if distractors:
            canvas, object_mask, distractor_masks[start:stop] = _draw_among_distractors(
                labels[start:stop], size, generator)
            marker = None
        else:
            canvas, object_mask, marker = _draw(labels[start:stop], size, generator, shortcut,
                                                train)
        images[start:stop] = canvas.mul_(255).round_().to(torch.uint8)
        masks[start:stop] = object_mask
        if marker is not None:
            marker_masks[start:stop], marker_labels[start:stop] = marker
    return ImageTensors(images, labels, masks, marker_masks, marker_labels,
                        distractor_masks=distractor_masks)


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator
             ) -> torch.Tensor:
    return torch.rand(shape, generator=generator) * (high - low) + low


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether each (u, v) of a shape's own unit frame lies inside shape number `shape`."""
    name = CLASSES[shape]
    if name in ("disc", "ring"):
        squared = u * u + v * v
        inside = squared <= 1.0
        return inside & (squared >= 0.55 ** 2) if name == "ring" else inside
    au, av = u.abs(), v.abs()
    if name == "square":
        return (au <= 0.8) & (av <= 0.8)
    if name == "triangle":  # vertices at (0, 1) and (+-sqrt(3)/2, -1/2)
        return (v >= -0.5) & (math.sqrt(3.0) * au + v <= 1.0)
    if name == "cross":
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    return (au <= 1.0) & (av <= 0.28)  # bar


def _shape_masks(labels: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each image's own shape, tested only on the images of that class (u, v: (n, H, W))."""
    masks = torch.empty(u.shape, dtype=torch.bool)
    for shape in range(len(CLASSES)):
        rows = (labels == shape).nonzero().squeeze(1)
        if rows.numel():
            masks[rows] = _inside(shape, u[rows], v[rows])
    return masks


def _draw(labels: torch.Tensor, size: int, generator: torch.Generator,
          shortcut: float | None, train: bool
          ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """A chunk's images (n, 3, size, size) in [0, 1], object masks and (marker masks, the
    class each marker's colour stands for). The random draws come in a fixed order (the
    background, the blob, the shape, the marker): the same generator gives the same bytes."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in [0, 1]
    ys, xs = coords.view(1, size, 1), coords.view(1, 1, size)
    canvas = _background(labels.shape[0], size, xs, ys, generator)
    canvas = _blob(canvas, xs, ys, generator)
    canvas, object_mask = _shape(canvas, labels, xs, ys, generator)
    if shortcut is None:
        return canvas.clamp_(0, 1), object_mask, None
    canvas, marker, marker_class = _marker(canvas, labels, generator, shortcut, train)
    return canvas.clamp_(0, 1), object_mask & ~marker, (marker, marker_class)


def _background(n: int, size: int, xs: torch.Tensor, ys: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
    """Two random colours mixed by stripes of random angle and frequency, plus pixel noise,
    so texture is everywhere and carries no label."""
    colour_a = torch.rand(n, 3, 1, 1, generator=generator)
    colour_b = torch.rand(n, 3, 1, 1, generator=generator)
    angle = _uniform((n, 1, 1), 0, math.pi, generator)
    frequency = _uniform((n, 1, 1), 2, 9, generator)
    phase = _uniform((n, 1, 1), 0, 2 * math.pi, generator)
    stripes = 0.5 + 0.5 * torch.sin(
        2 * math.pi * frequency * (xs * torch.cos(angle) + ys * torch.sin(angle)) + phase)
    canvas = colour_a + (colour_b - colour_a) * (0.35 * stripes).unsqueeze(1)
    # Uniform pixel noise (std 0.04): a third of the cost of normal noise, same look.
    return canvas + 0.14 * (torch.rand(n, 3, size, size, generator=generator) - 0.5)


def _blob(canvas: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
          generator: torch.Generator) -> torch.Tensor:
    """The distractor: a soft blob of random colour, size and place, drawn under the shape."""
    n = canvas.shape[0]
    blob_x = torch.rand(n, 1, 1, generator=generator)
    blob_y = torch.rand(n, 1, 1, generator=generator)
    blob_r = _uniform((n, 1, 1), 0.08, 0.2, generator)
    blob = torch.exp(-((xs - blob_x) ** 2 + (ys - blob_y) ** 2) / (2 * blob_r ** 2))
    blob_colour = torch.rand(n, 3, 1, 1, generator=generator)
    return canvas + (blob_colour - canvas) * (0.8 * blob).unsqueeze(1)


def _shape(canvas: torch.Tensor, labels: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's shape (centre, radius and rotation at random; it stays mostly inside the
    image) painted over the canvas; returns the canvas and the shape's mask."""
    n = canvas.shape[0]
    radius = _uniform((n, 1, 1), 0.22, 0.36, generator)
    centre_x = radius * 0.9 + torch.rand(n, 1, 1, generator=generator) * (1 - 1.8 * radius)
    centre_y = radius * 0.9 + torch.rand(n, 1, 1, generator=generator) * (1 - 1.8 * radius)
    rotation = _uniform((n, 1, 1), 0, 2 * math.pi, generator)
    dx, dy = xs - centre_x, ys - centre_y
    cos, sin = torch.cos(rotation), torch.sin(rotation)
    u = (dx * cos + dy * sin) / radius
    v = (dy * cos - dx * sin) / radius
    object_mask = _shape_masks(labels, u, v)
    colour = _contrasting(canvas.mean(dim=(1, 2, 3)).view(n, 1, 1, 1), generator)
    return torch.where(object_mask.unsqueeze(1), colour, canvas), object_mask


def _contrasting(background_level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 1, 1) colours whose brightness differs from the background's mean (n, 1, 1, 1)
    by at least 0.3, so a shape is always visible; hue and which side of the background it
    sits are random."""
    colour = torch.rand(background_level.shape[0], 3, 1, 1, generator=generator)
    darker = background_level > 0.5
    offset = colour.mean(dim=1, keepdim=True) - background_level
    shift = torch.where(darker, (-0.3 - offset).clamp(max=0), (0.3 - offset).clamp(min=0))
    return (colour + shift).clamp(0, 1)


def _marker(canvas: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
            shortcut: float, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shortcut marker in the top-left corner: in training its colour is the class's
    with probability `shortcut` (else a random class's), in the test split always random.
    Returns the canvas, the marker's mask and the class its colour stands for."""
    n, size = canvas.shape[0], canvas.shape[-1]
    side = max(3, round(0.15 * size))  # 5 px at 32: small, yet learnable in minutes
    random_class = torch.randint(len(CLASSES), (n,), generator=generator)
    if train:
        honest = torch.rand(n, generator=generator) < shortcut
        marker_class = torch.where(honest, labels, random_class)
    else:
        marker_class = random_class
    marker = torch.zeros(n, size, size, dtype=torch.bool)
    marker[:, 1:1 + side, 1:1 + side] = True
    canvas = torch.where(marker.unsqueeze(1), MARKER_COLOURS[marker_class].view(n, 3, 1, 1),
                         canvas)
    return canvas, marker, marker_class


# shapes-distractors --------------------------------------------------------------------------

def _draw_among_distractors(labels: torch.Tensor, size: int, generator: torch.Generator
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A chunk's images (n, 3, size, size) in [0, 1], target masks and distractor masks.
    Draws in a fixed order (background, blob, layout, then each shape's colour, the
    distractors before the target): the same generator gives the same bytes."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    ys, xs = coords.view(1, size, 1), coords.view(1, 1, size)
    canvas = _background(labels.shape[0], size, xs, ys, generator)
    canvas = _blob(canvas, xs, ys, generator)
    level = canvas.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)  # every shape contrasts with it
    classes, centres, radii, present = _layout(labels, size, generator)
    rotation = _uniform(tuple(radii.shape), 0, 2 * math.pi, generator)
    masks = [_placed_masks(classes[:, j], centres[:, j], radii[:, j], rotation[:, j], xs, ys)
             & present[:, j].view(-1, 1, 1) for j in range(classes.shape[1])]
    for mask in masks[1:] + masks[:1]:  # distractors first, then the target
        canvas = torch.where(mask.unsqueeze(1), _contrasting(level, generator), canvas)
    distractor_mask = torch.stack(masks[1:]).any(dim=0)
    return canvas.clamp_(0, 1), masks[0], distractor_mask


def _layout(labels: torch.Tensor, size: int, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each image's shapes go: (classes (n, 1 + D), centres (n, 1 + D, 2), radii
    (n, 1 + D), present (n, 1 + D) bool), column 0 the target, D = the most distractors.
    Distractors take distinct classes other than the label, a radius of DISTRACTOR_SCALE
    times the target's, and the first of `_PLACES` random places whose REACH circle keeps a
    pixel clear of every shape placed before it (so no two shapes share a pixel)."""
    n, most = labels.shape[0], DISTRACTORS[1]
    target_radius = _uniform((n, 1), *TARGET_RADIUS, generator)
    radii = torch.cat([target_radius,
                       target_radius * _uniform((n, most), *DISTRACTOR_SCALE, generator)], 1)
    # Classes: a random order of the other classes (the label sorts last), the first D.
    keys = torch.rand(n, len(CLASSES), generator=generator).scatter_(1, labels.view(n, 1), 2.0)
    classes = torch.cat([labels.view(n, 1), keys.argsort(dim=1)[:, :most]], 1)
    wanted = torch.randint(DISTRACTORS[0], DISTRACTORS[1] + 1, (n, 1), generator=generator)
    centres = torch.empty(n, 1 + most, 2)
    present = torch.zeros(n, 1 + most, dtype=torch.bool)
    centres[:, 0] = _inside_image(target_radius.expand(n, 2), 0.9, generator)
    present[:, 0] = True
    reach = REACH[classes] * radii  # (n, 1 + D), a share of the side
    gap = 1.0 / size  # a pixel between any two shapes' reach: they never touch
    for j in range(1, 1 + most):
        places = _inside_image(radii[:, j:j + 1, None].expand(n, _PLACES, 2), 0.5, generator)
        distance = (places[:, :, None] - centres[:, None, :j]).norm(dim=-1)  # (n, P, j)
        clear = distance >= reach[:, None, :j] + reach[:, j, None, None] + gap
        free = (clear | ~present[:, None, :j]).all(dim=-1)  # (n, P)
        first = free.float().argmax(dim=1)  # the first free place (0 when none is)
        centres[:, j] = places[torch.arange(n), first]
        present[:, j] = free.any(dim=1) & (j <= wanted[:, 0])
    return classes, centres, radii, present


def _inside_image(radius: torch.Tensor, inside: float, generator: torch.Generator
                  ) -> torch.Tensor:
    """Random centres (x, y) in the last dimension for shapes of `radius` (a share of the
    side), at least `inside` radii from each border (`_shape` keeps 0.9)."""
    return radius * inside + torch.rand(radius.shape, generator=generator) * (
        1 - 2 * inside * radius)


def _placed_masks(classes: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
                  rotation: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(n, H, W) masks of shapes `classes` (n,) at `centres` (n, 2), `radii` and `rotation`
    (n,), in the same unit frame as `_shape`'s."""
    n = classes.shape[0]
    dx, dy = xs - centres[:, 0].view(n, 1, 1), ys - centres[:, 1].view(n, 1, 1)
    cos, sin = torch.cos(rotation).view(n, 1, 1), torch.sin(rotation).view(n, 1, 1)
    radius = radii.view(n, 1, 1)
    return _shape_masks(classes, (dx * cos + dy * sin) / radius, (dy * cos - dx * sin) / radius)
