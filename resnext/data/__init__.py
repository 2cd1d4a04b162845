"""Datasets for training and for checking attributions: `shapes` (generated, with ground-truth
masks; `shapes_distractors`: among smaller shapes of other classes, whose pixels are known
too), CIFAR-10/100 (official binary archives) and any folder of images.

Each function returns a `DatasetPair`: `.train` and `.test` (torch Datasets of
`(image float32 (3, H, W) in [0, 1], label)`), `.classes`, `.mean` / `.std` of the training
images per channel, `.name`, `.image_size`, and `.spec`, from which `from_spec` rebuilds the
same pair (a run keeps it in its config.json). `DATASETS` (the registry) says, per name, what
builds it and what it is; it and the names below it need no torch, the rest is imported on
first use.
"""

from __future__ import annotations

from .._lazy import lazy_attributes
from .registry import (DATASETS, DEFAULT_SHORTCUT, IMAGE_SIZE_RANGE, IMAGES_RANGE, NAMES,
                       SHAPE_CLASSES, DatasetEntry, request_spec)
from .registry import load as from_spec

# Each torch-backed name and the module that holds it, imported on first use.
_SOURCES = {
    "DatasetFileError": ".cifar", "DatasetUnavailableError": ".cifar", "cifar10": ".cifar",
    "cifar100": ".cifar", "SkippedImageWarning": ".folder", "image_folder": ".folder",
    "MARKER_COLOURS": ".synthetic", "shapes": ".synthetic", "shapes_distractors": ".synthetic",
    "DatasetPair": ".tensors", "ImageTensors": ".tensors", "subset": ".tensors",
}

__getattr__, __dir__ = lazy_attributes(__name__, globals(), _SOURCES)


__all__ = [
    "DATASETS", "DEFAULT_SHORTCUT", "IMAGES_RANGE", "IMAGE_SIZE_RANGE", "MARKER_COLOURS",
    "NAMES", "SHAPE_CLASSES", "DatasetEntry", "DatasetFileError", "DatasetPair",
    "DatasetUnavailableError", "ImageTensors", "SkippedImageWarning", "cifar10", "cifar100",
    "from_spec", "image_folder", "request_spec", "shapes", "shapes_distractors", "subset",
]
