"""Images for attribution: the sample photos, and an upload turned into what the network sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def sample_images() -> list[Path]:
    """The sample photos shipped in assets/samples (see its README for their origin)."""
    if not SAMPLES_DIR.is_dir():
        return []
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES)


@dataclass
class PreparedImage:
    shown: np.ndarray  # (H, W, 3) uint8: the resized, centre-cropped image the network sees
    tensor: Any  # (1, 3, H, W) float32, ImageNet-normalised


def prepare_image(source: Any, weights_name: str | None, image_size: int) -> PreparedImage:
    """Load an upload (path, bytes, array or PIL image) with the weights' eval transform.

    Published weights use their own resize/crop (resnext.PUBLISHED_WEIGHTS); random or user
    weights use the selected input size with ImageNet's 256:224 resize ratio.
    """
    from resnext.imaging import eval_sizes, load_image, normalize, resize_and_crop

    if source is None or (isinstance(source, str) and not source.strip()):
        raise ValueError("no image: upload a photo or pick a sample")
    if isinstance(source, dict) and "path" in source:  # a FileData dict from the API
        source = source["path"]
    resize, crop = eval_sizes(weights_name, None if weights_name else image_size)
    cropped = resize_and_crop(load_image(source), resize, crop)
    return PreparedImage(np.asarray(cropped, dtype=np.uint8), normalize(cropped))


def crop_box(width: int, height: int, resize_size: int, crop_size: int
             ) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the eval transform's centre crop in the photo's own
    pixels: the shorter side is resized to `resize_size`, then `crop_size` is cut from the
    middle (resnext.imaging.resize_and_crop), so the crop is crop/resize of the shorter side."""
    side = min(width, height) * crop_size / resize_size
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def crop_preview(source: Any, weights_name: str | None, image_size: int,
                 longest_side: int = 320) -> np.ndarray:
    """The whole photo, small, with the centre crop the network sees outlined and the rest
    dimmed: (H, W, 3) uint8. The attribution map covers only the outlined square."""
    from PIL import Image, ImageDraw

    from resnext.imaging import eval_sizes, load_image

    if isinstance(source, dict) and "path" in source:
        source = source["path"]
    photo = load_image(source)
    resize, crop = eval_sizes(weights_name, None if weights_name else image_size)
    box = crop_box(photo.width, photo.height, resize, crop)
    factor = min(1.0, longest_side / max(photo.size))
    small = photo.resize((max(1, round(photo.width * factor)), max(1, round(photo.height * factor))),
                         Image.BILINEAR)
    box = tuple(v * factor for v in box)
    dimmed = Image.blend(small, Image.new("RGB", small.size), 0.55)
    inside = tuple(int(round(v)) for v in box)
    dimmed.paste(small.crop(inside), inside[:2])
    line = max(2, round(max(small.size) / 110))
    ImageDraw.Draw(dimmed).rectangle(inside, outline=(255, 200, 0), width=line)
    return np.asarray(dimmed, dtype=np.uint8)
