"""Datasets for training and for checking attributions: `shapes` (generated, with ground-truth
masks), CIFAR-10/100 (official binary archives) and any folder of images.

Each function returns a `DatasetPair`: `.train` and `.test` (torch Datasets of
`(image float32 (3, H, W) in [0, 1], label)`), `.classes`, `.mean` / `.std` of the training
images per channel, `.name`, `.image_size`, and `.spec`, from which `from_spec` rebuilds the
same pair (a run keeps it in its config.json).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .cifar import DatasetFileError, DatasetUnavailableError, cifar10, cifar100
from .folder import SkippedImageWarning, image_folder
from .synthetic import CLASSES as SHAPE_CLASSES
from .synthetic import MARKER_COLOURS
from .synthetic import shapes
from .tensors import DatasetPair, ImageTensors, channel_stats

NAMES = ("shapes", "shapes-shortcut", "cifar10", "cifar100", "folder")
# shapes-shortcut's default: the marker tells the class in 90 % of training images.
DEFAULT_SHORTCUT = 0.9


def subset(pair: DatasetPair, n_train: int | None = None, n_test: int | None = None
           ) -> DatasetPair:
    """The first `n_train` training and `n_test` test images of `pair` (None: all of them);
    the mean and std are the subset's own. The spec records the limits."""
    limits = {}
    splits = {}
    for split, count in (("train", n_train), ("test", n_test)):
        full = getattr(pair, split)
        if count is None or count >= len(full):
            splits[split] = full
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{split} size must be a whole number of at least 1, got {count!r}")
        splits[split] = ImageTensors(
            full.images[:count], full.labels[:count],
            None if full.masks is None else full.masks[:count],
            None if full.marker_masks is None else full.marker_masks[:count],
            None if full.marker_labels is None else full.marker_labels[:count])
        limits[split] = count
    if not limits:
        return pair
    mean, std = (channel_stats(splits["train"].images) if "train" in limits
                 else (pair.mean, pair.std))
    spec = {**pair.spec, "limit": {**pair.spec.get("limit", {}), **limits}}
    return dataclasses.replace(pair, train=splits["train"], test=splits["test"], mean=mean,
                               std=std, spec=spec)


def from_spec(spec: Mapping[str, Any]) -> DatasetPair:
    """Rebuild a dataset from a run's "data" section (or a DatasetPair's `.spec`)."""
    if not isinstance(spec, Mapping) or spec.get("name") not in NAMES:
        name = spec.get("name") if isinstance(spec, Mapping) else spec
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    name = spec["name"]
    if name in ("shapes", "shapes-shortcut"):
        sizes = spec.get("sizes", {})
        return shapes(n_train=sizes.get("train", 10000), n_test=sizes.get("test", 1000),
                      image_size=spec.get("image_size", 32), seed=spec.get("seed", 0),
                      shortcut=spec.get("shortcut"))
    if name == "cifar10":
        pair = cifar10(spec["root"])
    elif name == "cifar100":
        pair = cifar100(spec["root"], labels=spec.get("labels", "fine"))
    else:
        pair = image_folder(spec["root"], image_size=spec.get("image_size", 64),
                            test_fraction=spec.get("test_fraction", 0.2), seed=spec.get("seed", 0))
    limit = spec.get("limit") or {}
    return subset(pair, limit.get("train"), limit.get("test"))


__all__ = [
    "DEFAULT_SHORTCUT", "MARKER_COLOURS", "NAMES", "SHAPE_CLASSES", "DatasetFileError",
    "DatasetPair", "DatasetUnavailableError", "ImageTensors", "SkippedImageWarning", "cifar10",
    "cifar100", "from_spec", "image_folder", "shapes", "subset",
]
