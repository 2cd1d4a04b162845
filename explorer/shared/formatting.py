"""Numbers as a person reads them: exact counts with separators, sizes with units; and the
HTML of a row of figure cards (label, big value, note) that every tab with headline numbers
shows. The cards' styling is in explorer/theme.py (Gradio's CSS variables: light and dark)."""

from __future__ import annotations

import html
from typing import Iterable

from resnext.units import byte_size, duration  # noqa: F401  (one way to print them)


def count(value: int) -> str:
    """25028904 -> '25,028,904'."""
    return f"{value:,}"


def scaled(value: float, unit: str = "") -> str:
    """4230479872 -> '4.23 G' (SI prefixes; three significant decimals for G and above)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}" if factor < 1e9 else \
                f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".strip()


def percent_change(value: float, baseline: float) -> str:
    if baseline == 0:
        return "n/a"
    change = 100.0 * (value - baseline) / baseline
    return f"{change:+.1f} %"


def card(label: str, value: str, note: str, warning: str = "") -> str:
    """One card; `warning`, when given, is shown below the note in the warning style."""
    extra = f'<div class="rx-warning">{html.escape(warning)}</div>' if warning else ""
    return (f'<div class="rx-card"><div class="rx-label">{html.escape(label)}</div>'
            f'<div class="rx-value">{html.escape(value)}</div>'
            f'<div class="rx-note">{html.escape(note)}</div>{extra}</div>')


def cards(title: str, items: Iterable[str], footer: str = "") -> str:
    """A titled grid of `card`s, with an optional note under it (plain text, escaped)."""
    tail = (f'<div class="rx-note" style="margin-top:0.5rem">{html.escape(footer)}</div>'
            if footer else "")
    return (f'<div class="rx-title">{html.escape(title)}</div>'
            f'<div class="rx-cards">{"".join(items)}</div>{tail}')
