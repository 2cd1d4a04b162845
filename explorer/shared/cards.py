"""The HTML of a row of figure cards (label, big value, note), used by every tab that shows
headline numbers. Styling is in explorer/theme.py (Gradio's CSS variables: light and dark)."""

from __future__ import annotations

import html
from typing import Iterable


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
