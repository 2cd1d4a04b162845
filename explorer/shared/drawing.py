"""Drawing maps and masks on images: overlays with their colour maps, object outlines, the
enlargement of small images. Plain numpy; shared by the Attributions, Evaluate and Train tabs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from resnext.explain.single import Limit, in_range

SIGNS = ("positive", "absolute", "all")
# One-sided values (positive, absolute) read on a sequential map, dark to bright; signed
# values ("all") on a diverging map whose neutral middle is 0 (Captum's visualisation does
# the same: blended heat maps use a sequential map, signed ones a diverging one).
SEQUENTIAL_COLORMAPS = ("inferno", "viridis", "hot", "jet")
DIVERGING_COLORMAPS = ("RdBu_r", "coolwarm")
COLORMAPS = SEQUENTIAL_COLORMAPS + DIVERGING_COLORMAPS
# Each colour map's RGB at 0, 0.1, ..., 1 (matplotlib's, rounded; tests/test_attributions.py
# checks them against matplotlib): the colour bar is drawn from these, so building the page
# does not import matplotlib (~60 ms of start-up) just to sample eleven colours.
COLOUR_STOPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "inferno": (
        (0, 0, 4), (22, 11, 57), (66, 10, 104), (106, 23, 110), (147, 38, 103), (188, 55, 84),
        (221, 81, 58), (243, 120, 25), (252, 165, 10), (246, 215, 70), (252, 255, 164),
    ),
    "viridis": (
        (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
        (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
    ),
    "hot": (
        (11, 0, 0), (76, 0, 0), (144, 0, 0), (210, 0, 0), (255, 23, 0), (255, 92, 0),
        (255, 157, 0), (255, 225, 0), (255, 255, 54), (255, 255, 157), (255, 255, 255),
    ),
    "jet": (
        (0, 0, 128), (0, 0, 241), (0, 76, 255), (0, 176, 255), (41, 255, 206), (125, 255, 122),
        (206, 255, 41), (255, 196, 0), (255, 104, 0), (241, 8, 0), (128, 0, 0),
    ),
    "RdBu_r": (
        (5, 48, 97), (32, 101, 171), (67, 147, 195), (144, 196, 221), (209, 229, 240),
        (247, 246, 246), (253, 219, 199), (243, 164, 129), (214, 96, 77), (177, 24, 43),
        (103, 0, 31),
    ),
    "coolwarm": (
        (59, 76, 192), (89, 119, 227), (123, 159, 249), (158, 190, 255), (192, 212, 245),
        (221, 220, 220), (242, 203, 183), (247, 172, 142), (238, 132, 104), (214, 82, 68),
        (180, 4, 38),
    ),
}
# The object's outline over a map: cyan is far from every colour map's colours but jet's
# middle, and from the photo's (the shapes are drawn in saturated primaries).
OUTLINE_COLOUR = (0, 255, 255)
# Overlays of up to half this side (a trained run's 16-64 px images) are enlarged by a whole
# factor, without smoothing, towards it (the 320 px overlay box less its label): shown at
# their own size they are a stamp, the browser would blur them if it scaled them, and a
# one-pixel outline would be a band across the object.
SMALL_OVERLAY_SIDE = 288
OPACITY = Limit("Opacity", 0.0, 1.0)


# Drawing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Display:
    """How a map is drawn over the photo; changing it redraws without recomputing."""

    sign: str = "positive"
    colormap: str = "inferno"
    # Half-strength at the map's brightest: the photo stays recognisable under the colour.
    opacity: float = 0.5

    def checked(self) -> "Display":
        if self.sign not in SIGNS:
            raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {self.sign!r}")
        allowed = colormaps_for(self.sign)
        if self.colormap not in allowed:
            kind = ("a diverging map centred on 0" if self.sign == "all"
                    else "a sequential map (dark = none, bright = most)")
            raise ValueError(f"Colour map: sign {self.sign!r} needs {kind}: one of "
                             f"{', '.join(allowed)}, got {self.colormap!r}")
        if not in_range(self.opacity, OPACITY):
            raise ValueError(f"Opacity must be a number in [0, 1], got {self.opacity!r}")
        return self


def colormaps_for(sign: str) -> tuple[str, ...]:
    """The colour maps that read right for a sign: diverging for signed values."""
    return DIVERGING_COLORMAPS if sign == "all" else SEQUENTIAL_COLORMAPS


def display_scale(pixel_map: np.ndarray, sign: str, outlier_percent: float = 2.0) -> float:
    """The |value| drawn at full colour: the (100 - outlier_percent) percentile of the
    map's magnitudes after the sign is applied (as captum.attr.visualization does), so a few
    extreme pixels don't wash out the rest. 0 when the map is empty."""
    values = _signed(pixel_map, sign)
    magnitudes = np.abs(values)
    nonzero = magnitudes[magnitudes > 0]
    if nonzero.size == 0:
        return 0.0
    scale = float(np.percentile(magnitudes, 100 - outlier_percent))
    return scale if scale > 0 else float(nonzero.max())


def _signed(pixel_map: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return np.clip(pixel_map, 0, None)
    if sign == "absolute":
        return np.abs(pixel_map)
    if sign == "all":
        return pixel_map
    raise ValueError(f"Sign must be one of {', '.join(SIGNS)}, got {sign!r}")


def normalized_map(pixel_map: np.ndarray, sign: str, outlier_percent: float = 2.0) -> np.ndarray:
    """The map after its sign, divided by `display_scale`: [0, 1] for positive/absolute,
    [-1, 1] for all."""
    values = _signed(pixel_map, sign)
    scale = display_scale(pixel_map, sign, outlier_percent)
    if scale == 0:
        return np.zeros_like(values, dtype=np.float64)  # nothing to show: the bare image
    low = -1.0 if sign == "all" else 0.0
    return np.clip(values / scale, low, 1.0)


def colorize(values: np.ndarray, colormap: str, signed: bool) -> np.ndarray:
    """(H, W) in [0, 1] (or [-1, 1] when signed, 0 in the middle) -> (H, W, 3) RGB in [0, 1]."""
    import matplotlib

    if colormap not in COLORMAPS:
        raise ValueError(f"Colour map must be one of {', '.join(COLORMAPS)}, got {colormap!r}")
    cmap = matplotlib.colormaps[colormap]
    position = (values + 1) / 2 if signed else values
    return cmap(position)[..., :3]


def render_overlay(image: np.ndarray, pixel_map: np.ndarray, sign: str = "positive",
                   colormap: str = "inferno", opacity: float = Display.opacity) -> np.ndarray:
    """Blend a coloured map over the image: (H, W, 3) uint8.

    Each pixel's blend weight is `opacity × |scaled value|`, so where the map is zero the
    photo shows through unchanged and the colour appears only where there is attribution.
    """
    Display(sign, colormap, opacity).checked()
    if image.shape[:2] != pixel_map.shape:
        raise ValueError(f"map {pixel_map.shape} and image {image.shape[:2]} differ in size")
    values = normalized_map(pixel_map, sign)
    colours = colorize(values, colormap, signed=(sign == "all"))  # (H, W, 3)
    alpha = (opacity * np.abs(values))[..., None]  # (H, W, 1)
    blended = (1 - alpha) * (image.astype(np.float64) / 255.0) + alpha * colours
    return np.clip(np.rint(blended * 255), 0, 255).astype(np.uint8)


def enlargement(side: int) -> int:
    """The whole factor a small overlay is enlarged by: the largest that keeps it within
    SMALL_OVERLAY_SIDE (1 above half of it: ImageNet's 224 px stay as they are)."""
    return max(1, SMALL_OVERLAY_SIDE // max(1, side))


def overlay_view(image: np.ndarray, pixel_map: np.ndarray, display: Display,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """What the page shows of a map: `render_overlay`, enlarged (nearest neighbour) when
    small, with the object's boundary (`mask`, (H, W) bool, where known) drawn over it in
    OUTLINE_COLOUR, one shown pixel wide: (H·f, W·f, 3) uint8."""
    display = display.checked()
    overlay = render_overlay(image, pixel_map, display.sign, display.colormap, display.opacity)
    factor = enlargement(min(overlay.shape[:2]))
    overlay = overlay.repeat(factor, axis=0).repeat(factor, axis=1)
    if mask is None:
        return overlay
    if mask.shape != pixel_map.shape:
        raise ValueError(f"mask {mask.shape} and map {pixel_map.shape} differ in size")
    big_mask = mask.astype(bool).repeat(factor, axis=0).repeat(factor, axis=1)
    return draw_outline(overlay, big_mask, OUTLINE_COLOUR)



def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a bool mask (H, W): inside, with a 4-neighbour outside."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner


def draw_outline(image: np.ndarray, mask: np.ndarray, colour=(255, 255, 0)) -> np.ndarray:
    """`image` (H, W, 3 uint8) with the mask's boundary drawn in `colour`."""
    drawn = image.copy()
    drawn[outline(mask)] = colour
    return drawn


def to_uint8(image: Any) -> np.ndarray:
    """A dataset image (3, H, W) float in [0, 1] or uint8 -> (H, W, 3) uint8."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(array.transpose(1, 2, 0))


def enlarge(image: np.ndarray, side: int = 96) -> np.ndarray:
    """Nearest-neighbour upscaling, so 32-px images are visible in a gallery."""
    factor = max(1, side // image.shape[0])
    return image.repeat(factor, axis=0).repeat(factor, axis=1)
