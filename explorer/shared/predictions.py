"""Class names and top-k predictions, shared by the Run and Attributions tabs."""

from __future__ import annotations

import html
import math
from functools import lru_cache
from typing import Any, Sequence

from .assets import CLASS_NAMES_FILE, asset_path

CLASS_NAMES_PATH = asset_path(CLASS_NAMES_FILE)


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """ImageNet-1K class names in index order (the assets' CLASS_NAMES_FILE, read once)."""
    names = CLASS_NAMES_PATH.read_text(encoding="utf-8").splitlines()
    return tuple(name.strip() for name in names if name.strip())


def class_names_for(num_classes: int) -> tuple[str, ...]:
    """ImageNet's names for a 1000-class head, else "class 0", "class 1", ..."""
    if num_classes == 1000:
        return imagenet_class_names()
    return tuple(f"class {i}" for i in range(num_classes))


def top_predictions(logits: Any, class_names: Sequence[str], k: int = 5) -> list[tuple[int, str, float]]:
    """(index, name, probability) of the k most probable classes of logits (1, K)."""
    import torch

    probabilities = torch.softmax(logits.detach().float(), dim=1)[0]  # (K,)
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [(int(i), class_names[int(i)], float(v)) for v, i in zip(values, indices)]


def percent(probability: float, figures: int = 2) -> str:
    """A probability as a percentage with `figures` significant figures ("87 %", "0.11 %"),
    so the near-uniform top-5 of an untrained network can still be compared."""
    value = 100 * float(probability)
    if value <= 0:
        return "0 %"
    decimals = max(0, figures - 1 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f} %"


def distinct_percents(probabilities: Sequence[float], most: int = 4) -> list[str]:
    """Percentages with two significant figures, or up to `most` where two would show
    different probabilities as equal (an untrained network's top-5 differ in the 3rd)."""
    for figures in range(2, most + 1):
        shown = [percent(p, figures) for p in probabilities]
        ties = any(a == b and p != q for a, b, p, q in
                   zip(shown, shown[1:], probabilities, probabilities[1:]))
        if not ties:
            break
    return shown


def top_html(top: Sequence[tuple[int, str, float]]) -> str:
    """The top-k as rows of name, bar and percentage (HTML). Bars are relative to the most
    probable class, so near-equal probabilities still show their order."""
    if not top:
        return ""
    highest = max(probability for _, _, probability in top) or 1.0
    rows = []
    shown = distinct_percents([probability for _, _, probability in top])
    for (index, name, probability), text in zip(top, shown):
        width = 100 * probability / highest
        rows.append(
            f'<div class="rx-top-row" style="margin: 0.25rem 0;">'
            f'<div style="display: flex; justify-content: space-between; gap: 0.5rem;">'
            f'<span>{html.escape(name)} <span style="color: var(--body-text-color-subdued);">'
            f'#{index}</span></span><span style="font-variant-numeric: tabular-nums;">'
            f'{text}</span></div>'
            f'<div style="height: 6px; border-radius: 3px; width: {width:.1f}%; '
            f'background: var(--color-accent);"></div></div>')
    return ('<div class="rx-top" style="color: var(--body-text-color);">'
            '<div style="font-size: 0.8rem; color: var(--body-text-color-subdued);">'
            'Top-5 predictions (bars relative to the first)</div>' + "".join(rows) + "</div>")
