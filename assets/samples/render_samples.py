"""Render the sample photos in this folder (synthetic scenes: no third-party content).

    python assets/samples/render_samples.py

Deterministic: a fixed seed per scene, so re-running rewrites identical files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 400, 300


def vertical_gradient(top: tuple[int, int, int], bottom: tuple[int, int, int], height: int,
                      width: int) -> np.ndarray:
    t = np.linspace(0, 1, height)[:, None, None]  # (H, 1, 1)
    colours = (1 - t) * np.array(top) + t * np.array(bottom)  # (H, 1, 3)
    return np.repeat(colours, width, axis=1)  # (H, W, 3)


def textured(base: np.ndarray, rng: np.random.Generator, strength: float, blur: float) -> Image.Image:
    noise = Image.fromarray(rng.normal(128, 60, base.shape[:2]).clip(0, 255).astype(np.uint8))
    noise = np.asarray(noise.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64) - 128
    return Image.fromarray((base + strength * noise[..., None]).clip(0, 255).astype(np.uint8))


def shaded_disc(draw_on: Image.Image, centre: tuple[int, int], radius: int,
                colour: tuple[int, int, int]) -> None:
    """A ball lit from the upper left: brightness falls off from a highlight."""
    yy, xx = np.mgrid[0:draw_on.height, 0:draw_on.width]
    cx, cy = centre
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
    light = np.hypot(xx - (cx - radius / 3), yy - (cy - radius / 3)) / (1.6 * radius)
    shade = np.clip(1.15 - light, 0.25, 1.2)[..., None]
    pixels = np.asarray(draw_on, dtype=np.float64)
    ball = np.clip(np.array(colour) * shade + 40 * np.clip(0.25 - light, 0, None)[..., None] * 4,
                   0, 255)
    pixels[inside] = ball[inside]
    draw_on.paste(Image.fromarray(pixels.astype(np.uint8)))


def ball_on_grass(rng: np.random.Generator) -> Image.Image:
    sky = vertical_gradient((110, 160, 230), (200, 225, 245), HEIGHT, WIDTH)
    grass = vertical_gradient((70, 140, 50), (30, 95, 25), HEIGHT, WIDTH)
    horizon = int(HEIGHT * 0.45)
    scene = np.concatenate([sky[:horizon], grass[horizon:]])
    image = textured(scene, rng, 0.35, 1.2)
    shadow = Image.new("L", image.size, 0)
    ImageDraw.Draw(shadow).ellipse((190, 232, 300, 252), fill=110)
    image.paste((20, 50, 15), mask=shadow.filter(ImageFilter.GaussianBlur(6)))
    shaded_disc(image, (240, 190), 52, (215, 35, 30))
    return image


def sailboat_at_sunset(rng: np.random.Generator) -> Image.Image:
    sky = vertical_gradient((60, 50, 120), (250, 150, 70), HEIGHT, WIDTH)
    sea = vertical_gradient((40, 60, 110), (15, 25, 60), HEIGHT, WIDTH)
    horizon = int(HEIGHT * 0.6)
    image = textured(np.concatenate([sky[:horizon], sea[horizon:]]), rng, 0.15, 2.0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((250, horizon - 50, 330, horizon + 30), fill=(255, 210, 120))
    for row in range(horizon + 4, HEIGHT, 9):  # sun glitter on the waves
        draw.line((270 - (row - horizon) // 3, row, 310 + (row - horizon) // 3, row),
                  fill=(240, 170, 90), width=2)
    draw.polygon([(120, 210), (250, 210), (230, 232), (140, 232)], fill=(70, 40, 30))  # hull
    draw.line((185, 90, 185, 210), fill=(50, 35, 25), width=4)  # mast
    draw.polygon([(189, 95), (189, 204), (250, 204)], fill=(245, 240, 225))  # mainsail
    draw.polygon([(181, 105), (181, 204), (135, 204)], fill=(225, 220, 205))  # jib
    return image


def coffee_mug(rng: np.random.Generator) -> Image.Image:
    wall = vertical_gradient((225, 220, 210), (200, 195, 185), HEIGHT, WIDTH)
    table = vertical_gradient((150, 100, 60), (110, 70, 40), HEIGHT, WIDTH)
    edge = int(HEIGHT * 0.62)
    scene = np.concatenate([wall[:edge], table[edge:]])
    grain = np.sin(np.linspace(0, 60, WIDTH))[None, :, None] * 12  # wood grain
    scene[edge:] += grain
    image = textured(scene, rng, 0.2, 1.0)
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 140, 250, 100, 245
    draw.ellipse((left - 10, bottom - 12, right + 10, bottom + 14), fill=(80, 55, 35))  # shadow
    body = np.asarray(image, dtype=np.float64)
    xs = np.arange(left, right)
    shade = 0.55 + 0.45 * np.cos((xs - (left + 0.35 * (right - left))) / (right - left) * np.pi)
    body[top:bottom, left:right] = np.array([40, 90, 170])[None, None] * shade[None, :, None]
    image = Image.fromarray(body.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((left, top - 12, right, top + 12), fill=(30, 70, 140))  # rim
    draw.ellipse((left + 6, top - 8, right - 6, top + 8), fill=(60, 35, 20))  # coffee
    draw.ellipse((left, bottom - 10, right, bottom + 10), fill=(30, 70, 135))  # base
    draw.arc((right - 25, 135, right + 40, 215), start=-80, end=80, fill=(35, 80, 155), width=13)
    return image


SCENES = {"ball_on_grass.jpg": ball_on_grass, "sailboat_at_sunset.jpg": sailboat_at_sunset,
          "coffee_mug.jpg": coffee_mug}


def main() -> None:
    for index, (name, render) in enumerate(SCENES.items()):
        render(np.random.default_rng(index)).save(HERE / name, quality=90)


if __name__ == "__main__":
    main()
