"""The datasets' common shape: uint8 images held in one tensor, served as float32 in [0, 1].

Keeping a split as one (N, 3, H, W) uint8 tensor costs a quarter of float32's memory (CIFAR's
50,000 training images: 154 MB, not 614 MB) and lets the training engine slice whole
batches at once (`batch(indices)`) instead of collating images one by one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


class ImageTensors(Dataset):
    """A split: items are `(image, label)`, image float32 (3, H, W) in [0, 1], label an int.

    `masks` (bool (N, H, W)) marks the object's pixels where the ground truth is known,
    `marker_masks` the shortcut marker's pixels and `marker_labels` the class its colour
    stands for (shapes-shortcut), `distractor_masks` the pixels of the shapes that are not
    the label (shapes-distractors); each is None where the dataset has no such thing.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor,
                 masks: torch.Tensor | None = None,
                 marker_masks: torch.Tensor | None = None,
                 marker_labels: torch.Tensor | None = None, *,
                 distractor_masks: torch.Tensor | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must be ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.masks = masks
        self.marker_masks = marker_masks
        self.marker_labels = marker_labels  # the class whose colour each marker shows
        self.distractor_masks = distractor_masks

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float().div_(255), int(self.labels[index])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (float32 in [0, 1]) and labels of `indices`, sliced in one go."""
        return self.images[indices].float().div_(255), self.labels[indices]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, 3, H, W) images, on the [0, 1] scale.

    Summed in float64 chunk by chunk, so the result does not depend on how many images
    there are per chunk and never needs a float copy of the whole split.
    """
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    if count == 0:
        raise ValueError("no training images to compute the mean and std from")
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].to(torch.float64) / 255
        total += chunk.sum(dim=(0, 2, 3))
        squares += (chunk * chunk).sum(dim=(0, 2, 3))
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


@dataclass(frozen=True)
class DatasetPair:
    """A training and a test split with their class names and normalisation.

    `spec` is what `resnext.data.from_spec` needs to rebuild the very same pair; a run
    stores it in its config.json.
    """

    name: str
    train: ImageTensors
    test: ImageTensors
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """The run's "data" section: the spec plus what it produced."""
        return {**self.spec, "name": self.name, "image_size": self.image_size,
                "sizes": {"train": len(self.train), "test": len(self.test)},
                "classes": list(self.classes), "mean": list(self.mean), "std": list(self.std)}


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
            *(None if part is None else part[:count] for part in
              (full.masks, full.marker_masks, full.marker_labels)),
            distractor_masks=None if full.distractor_masks is None
            else full.distractor_masks[:count])
        limits[split] = count
    if not limits:
        return pair
    mean, std = (channel_stats(splits["train"].images) if "train" in limits
                 else (pair.mean, pair.std))
    spec = {**pair.spec, "limit": {**pair.spec.get("limit", {}), **limits}}
    return dataclasses.replace(pair, train=splits["train"], test=splits["test"], mean=mean,
                               std=std, spec=spec)
