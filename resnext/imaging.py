"""`resnext.preprocess`: images in, normalised tensors out: torchvision's ImageNet eval transform, rewritten with PIL.

`preprocess(image, weights=...)` returns the (1, 3, crop, crop) tensor that torchvision's
`weights.transforms()` (`ImageClassification`) gives for the same PIL image:

1. resize so the shorter side is `resize_size` (PIL bilinear, which is antialiased: its
   filter support widens with the downscale factor), the longer side `int(size * long / short)`;
2. centre crop to `crop_size`, top/left = `int(round((side - crop) / 2.0))` as torchvision's
   `center_crop` rounds;
3. scale to [0, 1] and normalise with ImageNet's mean and std.

`load_image` turns whatever a user uploads into an 8-bit RGB PIL image first: EXIF rotation
applied, grayscale/palette/CMYK/16-bit converted, transparency composited on white, the
first frame of an animation; a huge, corrupt or non-image file raises `ImageFileError` with
a message a person can act on. The pixel count is checked from the header, before decoding.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .published import PUBLISHED_WEIGHTS, WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 40 megapixels: a 50 MP camera photo is refused, a phone photo (12-48 MP) is fine. Decoding
# costs ~3 bytes per pixel and resizing a little more; well under Pillow's own bomb limit.
MAX_PIXELS = 40_000_000
DEFAULT_WEIGHTS = "resnext50_32x4d.IMAGENET1K_V2"

ImageSource = Union[Image.Image, str, os.PathLike, bytes, np.ndarray]


class ImageFileError(ValueError):
    """The file is not an image we can read (corrupt, unsupported, or too large)."""


def _open(source: ImageSource) -> Image.Image:
    """Open lazily (header only) from a path, bytes, an array or a PIL image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise ImageFileError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), "
                                 f"got shape {source.shape}")
        array = source[..., 0] if source.ndim == 3 and source.shape[2] == 1 else source
        if array.dtype != np.uint8:
            raise ImageFileError(f"an image array must be uint8, got {array.dtype}")
        return Image.fromarray(array)
    if isinstance(source, bytes):
        stream: io.BytesIO | Path = io.BytesIO(source)
        name = "the uploaded data"
    else:
        stream = Path(source)
        name = stream.name
        if not stream.is_file():
            raise ImageFileError(f"no image file at {stream}")
    try:
        with warnings.catch_warnings():
            # Above MAX_IMAGE_PIXELS Pillow only warns; we refuse below, with our own words.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except Image.DecompressionBombError:
        raise ImageFileError(
            f"{name} is too large: over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, which "
            f"could exhaust memory when decoded; the limit is {MAX_PIXELS / 1e6:.0f} megapixels. "
            f"Scale it down first.") from None
    except UnidentifiedImageError:
        raise ImageFileError(f"{name} is not an image this app can read: use JPEG, PNG, WebP, "
                             f"BMP or GIF") from None
    except OSError as error:
        raise ImageFileError(f"{name} is corrupt or truncated: it could not be read as an "
                             f"image ({error})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB with the colours a viewer would show (alpha composited on white)."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # Pillow's convert("RGB") clips these to 255 instead of rescaling: 16-bit PNGs
        # (values 0..65535) would come out white. Scale them to 0..255 ourselves.
        values = np.asarray(image, dtype=np.float64)  # (H, W)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F" and values.max(initial=0) <= 1.0:
            top = 1.0  # float images in [0, 1]
        gray = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGB


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An upright 8-bit RGB PIL image from a path, bytes, uint8 array or PIL image.

    Raises ImageFileError (a ValueError) for a missing, corrupt, non-image or too large file.
    """
    image = _open(source)
    width, height = image.size
    if width * height > max_pixels:
        raise ImageFileError(
            f"the image is {width}×{height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{max_pixels / 1e6:.0f} megapixels (decoding it could exhaust memory). Scale it "
            f"down first: the network sees it at 224×224 anyway.")
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated GIF/WebP: the first frame
        image.load()
        image = ImageOps.exif_transpose(image)  # EXIF orientation (phones store rotated)
        return _to_rgb(image)
    except (OSError, SyntaxError, ValueError) as error:
        # Truncated files raise OSError ("image file is truncated"); broken headers can
        # raise SyntaxError or ValueError inside a plugin.
        raise ImageFileError(f"the image file is corrupt or truncated ({error})") from None


def _resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    # torchvision.transforms.functional._compute_resized_output_size, for an int size.
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_width, new_height = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_width, new_height) == (width, height):
        return image  # torchvision returns the image untouched in this case
    return image.resize((new_width, new_height), Image.BILINEAR)


def _center_crop(image: Image.Image, crop: int) -> Image.Image:
    width, height = image.size
    if width < crop or height < crop:
        # torchvision pads with zeros in this case; only reachable with resize < crop.
        canvas = Image.new("RGB", (max(width, crop), max(height, crop)))
        canvas.paste(image, ((canvas.width - width) // 2, (canvas.height - height) // 2))
        image, (width, height) = canvas, canvas.size
    top = int(round((height - crop) / 2.0))
    left = int(round((width - crop) / 2.0))
    return image.crop((left, top, left + crop, top + crop))


def resize_and_crop(image: Image.Image, resize_size: int, crop_size: int) -> Image.Image:
    """Steps 1-2 of the eval transform: what the network sees, as a PIL RGB image."""
    return _center_crop(_resize_shorter_side(image, resize_size), crop_size)


def normalize(image: Image.Image) -> torch.Tensor:
    """Step 3: an RGB PIL image -> (1, 3, H, W) float32, ImageNet-normalised."""
    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3) in [0, 1]
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    array = (array - mean) / std
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def eval_sizes(weights: str | None, crop_size: int | None = None) -> tuple[int, int]:
    """(resize_size, crop_size) of published weights, or ImageNet's 256/224 ratio for a crop."""
    if weights is not None:
        if weights not in PUBLISHED_WEIGHTS:
            raise WeightsError(f"unknown weights {weights!r}; known: {', '.join(PUBLISHED_WEIGHTS)}")
        published = PUBLISHED_WEIGHTS[weights]
        return published.resize_size, published.crop_size
    if crop_size is None:
        raise ValueError("give either published weights or a crop size")
    return int(round(crop_size * 256 / 224)), crop_size


def preprocess(image: ImageSource, weights: str | None = DEFAULT_WEIGHTS,
               crop_size: int | None = None) -> torch.Tensor:
    """The normalised (1, 3, crop, crop) tensor for `image`, as `weights`' eval transform makes it.

    With `weights=None`, `crop_size` sets the crop and the resize keeps ImageNet's 256:224
    ratio (for random or user weights at any input size).
    """
    resize, crop = eval_sizes(weights, crop_size)
    return normalize(resize_and_crop(load_image(image), resize, crop))
