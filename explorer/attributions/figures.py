"""What the Attributions tab shows besides the overlay: the target picker, the colour bar,
each stage's strongest feature maps and the deletion curves' chart."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from resnext.explain.single import DeletionCurve, Limit

from ..shared.drawing import COLOUR_STOPS, Display, display_scale

CHANNELS = Limit("Channels per stage", 1, 32)
FEATURE_CHANNELS = 8  # feature maps: channels shown per stage by default
PREDICTED_CLASS = "predicted class"  # the target picker's first entry: explain the top class


# Predictions -----------------------------------------------------------------------------

def resolve_target(choice: Any, class_names: Sequence[str], predicted: int) -> int:
    """The class index for a target choice: "" / "predicted" -> predicted; an index; a name;
    or "index: name" as the target picker lists them."""
    if choice is None or (isinstance(choice, str) and choice.strip().lower() in ("", "predicted",
                                                                                    PREDICTED_CLASS)):
        return predicted
    if isinstance(choice, (int, float)) and not isinstance(choice, bool) and float(choice).is_integer():
        index = int(choice)
    else:
        text = str(choice).strip()
        head = text.split(":", 1)[0].strip()
        if head.isdigit():
            index = int(head)
        else:
            matches = [i for i, name in enumerate(class_names) if name.lower() == text.lower()]
            if not matches:
                raise ValueError(f"no class named {text!r}; pick one from the list "
                                 f"(e.g. {class_names[0]!r}) or give its index")
            index = matches[0]
    if not 0 <= index < len(class_names):
        raise ValueError(f"class index must be in [0, {len(class_names) - 1}], got {index}")
    return index


def target_choices(class_names: Sequence[str]) -> list[str]:
    """The target picker's entries: the predicted class, then "index: name" for each class."""
    return [PREDICTED_CLASS] + [f"{i}: {name}" for i, name in enumerate(class_names)]



def colour_bar_html(pixel_map: np.ndarray | None, display: Display) -> str:
    """A colour bar for the overlay: the map's colours from its low to its high end, with
    the attribution values they stand for (sum over RGB of the raw map)."""
    display = display.checked()
    stops = COLOUR_STOPS[display.colormap]
    colours = ", ".join(f"rgb({r}, {g}, {b}) {100 * k / (len(stops) - 1):.0f}%"
                        for k, (r, g, b) in enumerate(stops))
    scale = 0.0 if pixel_map is None else display_scale(pixel_map, display.sign)
    signed = display.sign == "all"
    what = {"positive": "positive attribution", "absolute": "|attribution|",
            "all": "attribution (blue = against the class, red = for it)"}[display.sign]
    if pixel_map is None:
        ticks = ["low", "high"] if not signed else ["negative", "0", "positive"]
    elif signed:
        ticks = [f"−{scale:.2g}", "0", f"+{scale:.2g}"]
    else:
        ticks = ["0", f"{scale:.2g}"]
    tick_html = "".join(f"<span>{t}</span>" for t in ticks)
    return (
        '<div class="rx-colorbar" style="font-size: 0.8rem; color: var(--body-text-color-subdued);">'
        f'<div style="height: 12px; border-radius: 3px; background: linear-gradient(to right, {colours});"></div>'
        f'<div style="display: flex; justify-content: space-between;">{tick_html}</div>'
        f"<div>Colour: {what}, per pixel summed over RGB; full colour at the 98th percentile "
        f"of |value|, clipped above. Colour fades with the value, so the photo shows where "
        f"the map is 0. Opacity {display.opacity:g}.</div></div>")



@dataclass
class FeatureGrid:
    stage: str
    channels: int
    side: tuple[int, int]
    shown: list[int]  # channel indices, strongest first
    image: np.ndarray  # (H, W, 3) uint8 grid of tiles

    @property
    def caption(self) -> str:
        listed = ", ".join(f"#{c}" for c in self.shown)
        return (f"{self.stage}: {self.channels} channels at {self.side[0]}×{self.side[1]}; "
                f"strongest by mean activation: {listed}")


def feature_map_grids(model: Any, x: Any, channels: int = FEATURE_CHANNELS, tile: int = 64, columns: int = 4,
                      colormap: str = "viridis") -> list[FeatureGrid]:
    """For each stage, its `channels` strongest channels (mean activation) as a tile grid.

    Each tile is scaled to its own maximum: the grid shows *where* a channel fires; the
    caption says which channels they are.
    """
    import matplotlib
    import torch
    import torch.nn.functional as F

    cmap = matplotlib.colormaps[colormap]
    with torch.inference_mode():
        features = model.forward_features(x)  # list of (1, C_s, H_s, W_s)
    grids = []
    for name, feature in zip(model.stage_names, features):
        maps = feature[0].float()  # (C, h, w)
        count = min(channels, maps.shape[0])
        strongest = maps.mean(dim=(1, 2)).topk(count).indices  # (count,)
        chosen = maps[strongest]  # (count, h, w)
        tiles = F.interpolate(chosen[None], size=(tile, tile), mode="nearest")[0]  # (count, t, t)
        peak = tiles.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        tiles = (tiles.clamp_min(0) / peak).cpu().numpy()  # (count, t, t) in [0, 1]
        rows = math.ceil(count / columns)
        gap = 2
        canvas = np.full((rows * (tile + gap) - gap, min(count, columns) * (tile + gap) - gap, 3),
                         255, dtype=np.uint8)
        for index in range(count):
            r, c = divmod(index, columns)
            rgb = (cmap(tiles[index])[..., :3] * 255).astype(np.uint8)
            canvas[r * (tile + gap):r * (tile + gap) + tile,
                   c * (tile + gap):c * (tile + gap) + tile] = rgb
        grids.append(FeatureGrid(name, maps.shape[0], tuple(maps.shape[1:]),
                                 [int(i) for i in strongest], canvas))
    return grids


def deletion_figure(curves: Sequence[tuple[str, DeletionCurve]]):
    """Plotly: target probability vs share of pixels removed, one line per map."""
    from ..shared.plots import figure

    data = [{"type": "scatter", "x": (curve.fractions * 100).tolist(),
             "y": curve.probabilities.tolist(), "mode": "lines+markers",
             "name": f"{label} (AUC {curve.auc:.3g})",
             "hovertemplate": "%{x:.0f} % removed: p = %{y:.3g}<extra></extra>"}
            for label, curve in curves]
    return figure(data, {
        # Short: the chart can be 300 px wide; the summary explains the curve.
        "title": {"text": "Deletion curve (lower AUC = more faithful)", "font": {"size": 13}},
        "xaxis": {"title": {"text": "most attributed pixels removed first (%)"}},
        "yaxis": {"title": {"text": "target class probability"}, "rangemode": "tozero",
                  "tickformat": ".2g"},
        "height": 320, "legend": {"orientation": "h", "y": -0.3}})
