"""Images for attribution: the sample photos, and an upload turned into what the network sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .assets import SAMPLES_FOLDER, asset_path

SAMPLES_DIR = asset_path(SAMPLES_FOLDER)
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SMALL_PREVIEW_SIDE = 128  # small photos are previewed enlarged to about this side
MASK_SUFFIX = ".mask.npy"  # a sample's object mask, beside it (a trained run's shapes images)
# ImageNet's channel statistics (resnext.imaging's, which imports torch: not at start-up).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sample_images() -> list[Path]:
    """The sample photos shipped in the assets' samples folder (see its README for their origin)."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the network's input: its shorter side resized to `resize_size`,
    the centre `crop_size` square cut out, then each channel normalised by `mean`/`std`.

    ImageNet weights: torchvision's eval transform (resize 256 or the weights' own, crop 224,
    ImageNet statistics). A trained run: its own image size with nothing cut from a square
    image (resize = crop) and its training set's mean and std, as the run was trained.
    """

    resize_size: int
    crop_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @classmethod
    def imagenet(cls, weights_name: str | None, image_size: int) -> "Preprocessing":
        """Published weights' own sizes, else ImageNet's 256:224 ratio at `image_size`."""
        from resnext import PUBLISHED_WEIGHTS

        if weights_name:
            published = PUBLISHED_WEIGHTS[weights_name]
            return cls(published.resize_size, published.crop_size)
        return cls(int(round(image_size * 256 / 224)), image_size)

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        return crop_box(width, height, self.resize_size, self.crop_size)

    def cuts(self, width: int, height: int) -> bool:
        """Does the centre crop leave part of a `width`×`height` photo out?"""
        left, top, right, bottom = self.crop_box(width, height)
        return left > 0.5 or top > 0.5 or right < width - 0.5 or bottom < height - 0.5


@dataclass
class PreparedImage:
    shown: np.ndarray  # (H, W, 3) uint8: the resized, centre-cropped image the network sees
    tensor: Any  # (1, 3, H, W) float32, normalised by the preprocessing's mean and std
    cut: bool = True  # whether the centre crop left part of the photo out
    mask: np.ndarray | None = None  # (H, W) bool: the object's pixels, where known


def _source(source: Any) -> Any:
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ValueError("no image: upload a photo or pick a sample")
    if isinstance(source, dict) and "path" in source:  # a FileData dict from the API
        return source["path"]
    return source


def prepare_image(source: Any, preprocessing: Preprocessing,
                  samples: list[Path] | tuple[Path, ...] = ()) -> PreparedImage:
    """Load an upload (path, bytes, array or PIL image) as `preprocessing` says.

    When the photo is, pixel for pixel, one of `samples` that has an object mask beside it
    (`<name>.mask.npy`, a trained run's shapes test images), the mask comes with it: the
    upload is identified by its content, since Gradio hands over a copy under another name.
    """
    import torch

    from resnext.imaging import load_image, resize_and_crop

    photo = load_image(_source(source))
    cropped = resize_and_crop(photo, preprocessing.resize_size, preprocessing.crop_size)
    shown = np.asarray(cropped, dtype=np.uint8)
    mean = np.asarray(preprocessing.mean, dtype=np.float32)
    std = np.asarray(preprocessing.std, dtype=np.float32)
    array = (shown.astype(np.float32) / 255.0 - mean) / std  # (H, W, 3)
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]
    cut = preprocessing.cuts(photo.width, photo.height)
    mask = None if cut else sample_mask(np.asarray(photo, dtype=np.uint8), samples)
    if mask is not None and mask.shape != shown.shape[:2]:
        mask = None  # a sample at another size than the network's input: no pixel match
    return PreparedImage(shown, tensor, cut, mask)


def sample_mask(pixels: np.ndarray, samples: list[Path] | tuple[Path, ...]) -> np.ndarray | None:
    """The object mask (H, W) bool of the sample whose pixels are exactly `pixels` (H, W, 3),
    or None (no such sample, or it has no mask)."""
    from PIL import Image

    for path in samples:
        mask_path = Path(path).with_suffix(MASK_SUFFIX)
        if not mask_path.is_file():
            continue
        with Image.open(path) as sample:
            if sample.size != (pixels.shape[1], pixels.shape[0]):
                continue
            if np.array_equal(np.asarray(sample.convert("RGB"), dtype=np.uint8), pixels):
                mask = np.load(mask_path, allow_pickle=False)
                return mask.astype(bool) if mask.shape == pixels.shape[:2] else None
    return None


def crop_box(width: int, height: int, resize_size: int, crop_size: int
             ) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the eval transform's centre crop in the photo's own
    pixels: the shorter side is resized to `resize_size`, then `crop_size` is cut from the
    middle (resnext.imaging.resize_and_crop), so the crop is crop/resize of the shorter side."""
    side = min(width, height) * crop_size / resize_size
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def crop_preview(source: Any, preprocessing: Preprocessing, longest_side: int = 320
                 ) -> np.ndarray:
    """The whole photo, small, with the centre crop the network sees outlined and the rest
    dimmed: (H, W, 3) uint8. The attribution map covers only the outlined square. When the
    crop cuts nothing (a trained run's square image), the photo as it is, without outline."""
    from PIL import Image, ImageDraw

    from resnext.imaging import load_image

    photo = load_image(_source(source))
    cut = preprocessing.cuts(photo.width, photo.height)
    box = preprocessing.crop_box(photo.width, photo.height)
    factor = min(1.0, longest_side / max(photo.size))
    if factor < 1:
        small = photo.resize((max(1, round(photo.width * factor)),
                              max(1, round(photo.height * factor))), Image.BILINEAR)
    else:  # a small image (a run's 16-64 px) enlarged by a whole factor, pixels kept sharp,
        # to fit the preview's box (160 px high, less its label)
        factor = max(1, SMALL_PREVIEW_SIDE // max(photo.size))
        small = photo.resize((photo.width * factor, photo.height * factor), Image.NEAREST)
    if not cut:
        return np.asarray(small, dtype=np.uint8)
    box = tuple(v * factor for v in box)
    dimmed = Image.blend(small, Image.new("RGB", small.size), 0.55)
    inside = tuple(int(round(v)) for v in box)
    dimmed.paste(small.crop(inside), inside[:2])
    line = max(2, round(max(small.size) / 110))
    ImageDraw.Draw(dimmed).rectangle(inside, outline=(255, 200, 0), width=line)
    return np.asarray(dimmed, dtype=np.uint8)
