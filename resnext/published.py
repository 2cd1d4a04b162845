"""torchvision's published ImageNet checkpoints, and the errors of weight loading.

Kept free of torch so the app can list weights and show errors before torch is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlparse

_BASE_URL = "https://download.pytorch.org/models/"


@dataclass(frozen=True)
class PublishedWeights:
    """A torchvision ImageNet-1K checkpoint (numbers from torchvision's weights metadata)."""

    name: str  # "resnext50_32x4d.IMAGENET1K_V2"
    preset: str  # the PRESETS entry whose architecture it fits
    url: str
    top1: float
    top5: float
    resize_size: int  # eval transform: shorter side resized to this (bilinear, antialiased)
    crop_size: int  # then centre-cropped to this

    @property
    def filename(self) -> str:
        return os.path.basename(urlparse(self.url).path)

    @property
    def hash_prefix(self) -> str:
        # torchvision names files "<arch>-<first 8 hex digits of the file's SHA-256>.pth".
        return self.filename.rsplit("-", 1)[1].split(".")[0]


def _published(preset: str, version: str, file: str, top1: float, top5: float, resize: int
               ) -> PublishedWeights:
    return PublishedWeights(f"{preset}.IMAGENET1K_{version}", preset, _BASE_URL + file,
                            top1, top5, resize, 224)


PUBLISHED_WEIGHTS: Mapping[str, PublishedWeights] = MappingProxyType({w.name: w for w in (
    _published("resnet50", "V1", "resnet50-0676ba61.pth", 76.130, 92.862, 256),
    _published("resnet50", "V2", "resnet50-11ad3fa6.pth", 80.858, 95.434, 232),
    _published("resnext50_32x4d", "V1", "resnext50_32x4d-7cdf4587.pth", 77.618, 93.698, 256),
    _published("resnext50_32x4d", "V2", "resnext50_32x4d-1a0047aa.pth", 81.198, 95.340, 232),
    _published("resnext101_32x8d", "V1", "resnext101_32x8d-8ba56ff5.pth", 79.312, 94.526, 256),
    _published("resnext101_32x8d", "V2", "resnext101_32x8d-110c445d.pth", 82.834, 96.228, 232),
    _published("resnext101_64x4d", "V1", "resnext101_64x4d-173b62eb.pth", 83.246, 96.454, 232),
)})


class WeightsError(Exception):
    """Base class: weights could not be loaded. The message says why and what to do."""


class WeightsUnavailableError(WeightsError):
    """A published checkpoint is not in the cache and could not be downloaded."""


class CheckpointFileError(WeightsError):
    """The file is missing, unreadable, not a state_dict, or unsafe to unpickle."""


class WeightsMismatchError(WeightsError):
    """The checkpoint's keys or shapes don't fit the model.

    `fits`: which network the checkpoint is for, in words ("it fits the preset
    seed_resnext50; ..."), put first in the message: the key lists can be long."""

    def __init__(self, missing: list[str], unexpected: list[str],
                 mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
                 fits: str | None = None) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mis_shaped = mis_shaped
        self.fits = fits
        super().__init__(self._describe())

    def _describe(self, limit: int = 10) -> str:
        def listing(items: list[str]) -> str:
            shown = ", ".join(items[:limit])
            return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")

        parts = ["the checkpoint does not fit this model"]
        if self.fits:
            parts.append(self.fits)
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {listing(self.unexpected)}")
        if self.mis_shaped:
            rows = [f"{k} (checkpoint {list(c)}, model {list(m)})" for k, c, m in self.mis_shaped]
            parts.append(f"{len(rows)} mis-shaped key(s): {listing(rows)}")
        return "; ".join(parts)
