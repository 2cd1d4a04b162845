"""`image_folder`: `root/<class>/<image>` read through the same safe loading as uploads."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..imaging import ImageFileError, load_image, resize_and_crop
from ..validation import whole_number
from .tensors import DatasetPair, ImageTensors, channel_stats

SIZE_RANGE = (16, 512)
# At most this many images are read (each is decoded, then kept at image_size only).
MAX_IMAGES = 200_000


class SkippedImageWarning(UserWarning):
    """An image in the folder could not be read and was left out."""


def image_folder(root: str | os.PathLike[str], image_size: int = 64, test_fraction: float = 0.2,
                 seed: int = 0) -> DatasetPair:
    """Every image under `root/<class>/`, resized (shorter side) and centre-cropped to
    `image_size`; a stratified split, the same for the same files and seed.

    Unreadable, corrupt or too large files are skipped with a SkippedImageWarning naming them.
    """
    root = Path(root)
    image_size = whole_number("image_size", image_size, *SIZE_RANGE)
    seed = whole_number("seed", seed, 0, 2**31 - 1)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
            0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a number between 0 and 1, got {test_fraction!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}: it should hold one sub-folder of "
                                f"images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders: put each class's images in "
                         f"{root}/<class name>/")
    per_class: list[list[torch.Tensor]] = []
    count = 0
    for name in classes:
        images = []
        for path in sorted(p for p in (root / name).iterdir()
                           if p.is_file() and not p.name.startswith(".")):
            if count >= MAX_IMAGES:
                raise ValueError(f"{root} holds more than {MAX_IMAGES} images; use a smaller "
                                 f"folder")
            try:
                picture = resize_and_crop(load_image(path), image_size, image_size)
            except ImageFileError as error:
                warnings.warn(f"skipped {path}: {error}", SkippedImageWarning, stacklevel=2)
                continue
            array = np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)
            images.append(torch.from_numpy(np.ascontiguousarray(array)))
            count += 1
        per_class.append(images)
    empty = [name for name, images in zip(classes, per_class) if not images]
    if empty:
        raise ValueError(f"class folder(s) {', '.join(empty)} in {root} hold no readable image")

    generator = torch.Generator().manual_seed(seed)
    train_items: list[tuple[torch.Tensor, int]] = []
    test_items: list[tuple[torch.Tensor, int]] = []
    for label, images in enumerate(per_class):
        order = torch.randperm(len(images), generator=generator).tolist()
        # At least one test image per class with two or more images; never all of them.
        n_test = min(len(images) - 1, max(1, round(test_fraction * len(images))))
        for rank, index in enumerate(order):
            (test_items if rank < n_test else train_items).append((images[index], label))
    if not test_items:
        raise ValueError(f"{root} has too few images for a test split: give each class at "
                         f"least two images")
    train = _stack(train_items)
    test = _stack(test_items)
    mean, std = channel_stats(train.images)
    spec = {"name": "folder", "root": str(root.resolve()), "image_size": image_size,
            "test_fraction": float(test_fraction), "seed": seed}
    return DatasetPair("folder", train, test, tuple(classes), mean, std, image_size, spec)


def _stack(items: list[tuple[torch.Tensor, int]]) -> ImageTensors:
    return ImageTensors(torch.stack([image for image, _ in items]),
                        torch.tensor([label for _, label in items], dtype=torch.int64))
