"""resnext.preprocess against an independent computation of torchvision's eval transform,
and the image loader on every kind of file a user might upload."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import resnext
from resnext.imaging import IMAGENET_MEAN, IMAGENET_STD, ImageFileError, load_image, resize_and_crop


def triangle_resample_1d(length_in: int, length_out: int) -> np.ndarray:
    """(out, in) weights of an antialiased bilinear (triangle) filter, written from the
    definition: support scaled by the downscale factor, centres at (i + 0.5) * scale."""
    scale = length_in / length_out
    stretch = max(scale, 1.0)
    matrix = np.zeros((length_out, length_in))
    source = np.arange(length_in) + 0.5
    for i in range(length_out):
        centre = (i + 0.5) * scale
        weights = np.clip(1.0 - np.abs(source - centre) / stretch, 0.0, None)
        matrix[i] = weights / weights.sum()
    return matrix


def reference_transform(rgb: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """Independent version: float maths only, no Pillow. rgb (H, W, 3) uint8 -> (3, crop, crop)."""
    height, width = rgb.shape[:2]
    if width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_w, new_h = int(resize * width / height), resize
    rows = triangle_resample_1d(height, new_h)  # (new_h, H)
    cols = triangle_resample_1d(width, new_w)  # (new_w, W)
    resized = np.einsum("ah,hwc->awc", rows, rgb.astype(np.float64), optimize=True)  # (new_h, W, 3)
    resized = np.einsum("awc,bw->abc", resized, cols, optimize=True)  # (new_h, new_w, 3)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    cropped = resized[top:top + crop, left:left + crop] / 255.0
    return ((cropped - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def smooth_random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    # Smooth content (upsampled noise) plus some fine detail: a fair test for a resampler.
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 8 + 2, width // 8 + 2, 3))
    y = np.linspace(0, coarse.shape[0] - 1.001, height)
    x = np.linspace(0, coarse.shape[1] - 1.001, width)
    smooth = coarse[y.astype(int)][:, x.astype(int)]
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("weights,shape", [
    ("resnext50_32x4d.IMAGENET1K_V2", (300, 451)),  # resize 232, landscape
    ("resnext50_32x4d.IMAGENET1K_V1", (397, 260)),  # resize 256, portrait, odd crop offset
    ("resnet50.IMAGENET1K_V2", (233, 233)),
])
def test_matches_an_independent_eval_transform(weights, shape):
    rgb = smooth_random_image(*shape)
    published = resnext.PUBLISHED_WEIGHTS[weights]
    ours = resnext.preprocess(Image.fromarray(rgb), weights=weights)
    assert ours.shape == (1, 3, 224, 224) and ours.dtype == torch.float32
    expected = reference_transform(rgb, published.resize_size, published.crop_size)
    # Pillow resamples in 8-bit fixed point (two passes, each rounded): within 2 grey levels.
    difference = np.abs(ours[0].numpy() - expected) * np.asarray(IMAGENET_STD)[:, None, None]
    assert difference.max() <= 2.5 / 255
    assert difference.mean() <= 0.6 / 255


def test_uniform_image_gives_exact_normalised_values():
    out = resnext.preprocess(Image.new("RGB", (500, 300), (255, 0, 128)))
    expected = (np.array([1.0, 0.0, 128 / 255]) - IMAGENET_MEAN) / IMAGENET_STD
    assert torch.allclose(out[0].mean(dim=(1, 2)), torch.tensor(expected, dtype=torch.float32),
                          atol=1e-5)
    assert float(out[0].std(dim=(1, 2)).max()) < 1e-5


def test_center_crop_rounds_like_torchvision():
    # 224x229 at resize 224 is kept as is; torchvision's top = int(round(5 / 2.0)) = 2
    # (Python rounds half to even), so rows 2..225 are kept.
    rgb = np.zeros((229, 224, 3), np.uint8)
    rgb[:, :, 0] = np.arange(229)[:, None]
    resize, crop = 224, 224
    cropped = np.asarray(resize_and_crop(Image.fromarray(rgb), resize, crop))
    assert cropped.shape == (224, 224, 3)
    assert cropped[0, 0, 0] == 2 and cropped[-1, 0, 0] == 225


def test_custom_crop_keeps_imagenet_ratio():
    out = resnext.preprocess(Image.new("RGB", (80, 60)), weights=None, crop_size=64)
    assert out.shape == (1, 3, 64, 64)


def _png_bytes(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def test_grayscale_and_palette_and_cmyk_become_rgb():
    gray = load_image(_png_bytes(Image.new("L", (20, 10), 77)))
    assert gray.mode == "RGB" and gray.getpixel((3, 3)) == (77, 77, 77)
    palette = Image.new("P", (8, 8))
    palette.putpalette([10, 200, 30] + [0] * 765)
    assert load_image(_png_bytes(palette)).getpixel((1, 1)) == (10, 200, 30)
    buffer = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buffer, format="JPEG", quality=100)
    red = load_image(buffer.getvalue()).getpixel((8, 8))
    assert red[0] > 240 and red[1] < 15 and red[2] < 15


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    loaded = load_image(_png_bytes(rgba))
    assert loaded.getpixel((5, 5)) == (255, 255, 255)  # fully transparent: white, not red
    assert loaded.getpixel((0, 0)) == (0, 0, 255)
    assert loaded.getpixel((1, 0))[0] in (127, 128)  # half black over white


def test_sixteen_bit_is_rescaled_not_clipped():
    values = np.array([[0, 32896, 65535]], dtype=np.uint16)  # 32896 = 128 * 257
    image = Image.fromarray(values)  # mode I;16
    loaded = load_image(_png_bytes(image))
    assert [loaded.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_exif_rotation_is_applied():
    # Stored 40 wide x 20 tall with a red left half; orientation 6 = "rotate 90° clockwise to
    # view", so the upright image is 20 wide x 40 tall with red on top.
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif, quality=95)
    upright = load_image(buffer.getvalue())
    assert upright.size == (20, 40)
    assert upright.getpixel((10, 5))[0] > 200 and upright.getpixel((10, 35))[2] > 200


def test_first_frame_of_a_gif():
    frames = [Image.new("P", (12, 12), i) for i in range(3)]
    for frame in frames:
        frame.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    buffer = io.BytesIO()
    frames[1].save(buffer, format="GIF", save_all=True, append_images=[frames[2], frames[0]])
    assert load_image(buffer.getvalue()).getpixel((5, 5)) == (255, 0, 0)


def _png_claiming_size(width: int, height: int) -> bytes:
    # A real PNG whose IHDR says width x height: opening reads only the header.
    data = bytearray(_png_bytes(Image.new("L", (4, 4))))
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_huge_image_refused_before_decoding():
    with pytest.raises(ImageFileError, match="megapixels"):
        load_image(_png_claiming_size(100_000, 100_000))
    with pytest.raises(ImageFileError, match="limit is"):
        load_image(_png_bytes(Image.new("RGB", (200, 100))), max_pixels=10_000)


def test_corrupt_and_non_image_files_get_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ImageFileError, match="not an image"):
        load_image(text)
    buffer = io.BytesIO()
    Image.fromarray(smooth_random_image(64, 64)).save(buffer, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[:400])
    with pytest.raises(ImageFileError, match="corrupt or truncated"):
        load_image(truncated)
    with pytest.raises(ImageFileError, match="no image file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError):  # ImageFileError is a ValueError: the app shows it as is
        resnext.preprocess(b"\x89PNG\r\n\x1a\n garbage")
