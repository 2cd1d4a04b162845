"""`image_folder`: `root/<class>/<image>` read through the same safe loading as uploads."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..imaging import ImageFileError, load_image, resize_and_crop
from ..validation import SEED_RANGE, whole_number
from .registry import DATASETS, IMAGE_SIZE_RANGE, class_folders
from .tensors import DatasetPair, ImageTensors, channel_stats

# At most this many images are read (each is decoded, then kept at image_size only).
MAX_IMAGES = 200_000


class SkippedImageWarning(UserWarning):
    """An image in the folder could not be read and was left out."""


_FOLDER = DATASETS["folder"]  # its defaults: side 64, a fifth of each class for testing


def image_folder(root: str | os.PathLike[str], image_size: int = _FOLDER.image_size,
                 test_fraction: float = _FOLDER.options["test_fraction"], seed: int = 0
                 ) -> DatasetPair:
    """Every image under `root/<class>/`, resized (shorter side) and centre-cropped to
    `image_size`; a stratified split, the same for the same files and seed.

    Unreadable, corrupt or too large files are skipped with a SkippedImageWarning naming them.
    """
    root = Path(root)
    image_size = whole_number("image_size", image_size, *IMAGE_SIZE_RANGE)
    seed = whole_number("seed", seed, *SEED_RANGE)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
            0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must be a number between 0 and 1, got {test_fraction!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}: it should hold one sub-folder of "
                                f"images per class")
    classes = class_folders(root)
    if not classes:
        raise ValueError(f"{root} has no class sub-folders: put each class's images in "
                         f"{root}/<class name>/")
    per_class = _read_classes(root, classes, image_size)
    train, test = _split(root, per_class, test_fraction, seed)
    mean, std = channel_stats(train.images)
    spec = {"name": _FOLDER.name, "root": str(root.resolve()), "image_size": image_size,
            "test_fraction": float(test_fraction), "seed": seed}
    return DatasetPair(_FOLDER.name, train, test, tuple(classes), mean, std, image_size, spec)


def _read_classes(root: Path, classes: list[str], image_size: int) -> list[list[torch.Tensor]]:
    """Each class folder's readable images, in file-name order, as uint8 (3, side, side)."""
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
            except ImageFileError as error:  # stacklevel 3: image_folder's caller
                warnings.warn(f"skipped {path}: {error}", SkippedImageWarning, stacklevel=3)
                continue
            array = np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)
            images.append(torch.from_numpy(np.ascontiguousarray(array)))
            count += 1
        per_class.append(images)
    empty = [name for name, images in zip(classes, per_class) if not images]
    if empty:
        raise ValueError(f"class folder(s) {', '.join(empty)} in {root} hold no readable image")
    return per_class


def _split(root: Path, per_class: list[list[torch.Tensor]], test_fraction: float, seed: int
           ) -> tuple[ImageTensors, ImageTensors]:
    """A stratified split, the same for the same images and seed."""
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
    return _stack(train_items), _stack(test_items)


def _stack(items: list[tuple[torch.Tensor, int]]) -> ImageTensors:
    return ImageTensors(torch.stack([image for image, _ in items]),
                        torch.tensor([label for _, label in items], dtype=torch.int64))
