"""A corpus of awkward and hostile uploads, generated on the spot (nothing downloaded)."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def decompression_bomb_png(side: int = 30_000) -> bytes:
    """A few-KB PNG that claims side x side pixels (1-bit grey, all zero rows)."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    # Only the first rows: the file stays tiny; a decoder would stop at the missing data,
    # but a safe loader refuses from the header alone.
    body = compressor.compress(row * 64) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body)
            + _png_chunk(b"IEND", b""))


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _photo(width: int = 96, height: int = 64) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def image_corpus(directory: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (file, should it work). Files that can't work must get a clear message."""
    photo = _photo()
    jpeg = _encoded(photo, "JPEG", quality=90)
    png = _encoded(photo, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    gif_frames = [_photo(40, 40), _photo(40, 40).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    gif_frames[0].save(gif, "GIF", save_all=True, append_images=gif_frames[1:], duration=100)
    sixteen = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)  # I;16
    files: dict[str, tuple[bytes, str, bool]] = {
        "empty": (b"", ".jpg", False),
        "text_renamed": (b"this is a text file, not a picture\n" * 20, ".jpg", False),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], ".jpg", False),
        "truncated_png": (png[: len(png) // 2], ".png", False),
        "decompression_bomb": (decompression_bomb_png(), ".png", False),
        "one_pixel": (_encoded(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), ".png", True),
        "strip_10000x200": (_encoded(_photo(10_000, 200), "PNG"), ".png", True),
        "grayscale": (_encoded(photo.convert("L"), "PNG"), ".png", True),
        "rgba": (_encoded(photo.convert("RGBA"), "PNG"), ".png", True),
        "palette": (_encoded(photo.convert("P"), "PNG"), ".png", True),
        "cmyk_jpeg": (_encoded(photo.convert("CMYK"), "JPEG"), ".jpg", True),
        "sixteen_bit": (_encoded(sixteen, "PNG"), ".png", True),
        "animated_gif": (gif.getvalue(), ".gif", True),
        "exif_rotated": (_encoded(photo, "JPEG", exif=exif), ".jpg", True),
        "webp": (_encoded(photo, "WEBP"), ".webp", True),
        "bmp": (_encoded(photo, "BMP"), ".bmp", True),
        "svg_as_png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                       b'<script>alert(1)</script></svg>', ".png", False),
        "html_as_jpg": (b"<html><body><script>alert('x')</script></body></html>", ".jpg", False),
    }
    out = {}
    for name, (data, suffix, works) in files.items():
        path = directory / f"{name}{suffix}"
        path.write_bytes(data)
        out[name] = (path, works)
    return out


class RunsCode:
    """Unpickling this creates `marker`: the proof that a loader executed code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def code_running_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": RunsCode(str(marker))}, handle)
    return path
