"""Plotly figures built from plain dicts, skipping plotly's per-property validation.

Validation makes a small two-panel figure cost ~45 ms to build; a slider change has a
budget of ~50 ms in all. The dicts here are written against plotly's schema and the
tests read the traces back, so nothing is lost by not re-validating at run time.
"""

from __future__ import annotations

from typing import Any

# Transparent backgrounds and no fixed text colour: Gradio's light and dark themes both
# show through, and plotly's default text colour reads on either.
BASE_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12},
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "legend": {"orientation": "h", "y": -0.2},
}


def figure(data: list[dict[str, Any]], layout: dict[str, Any]):
    import plotly.graph_objects as go

    merged = {**BASE_LAYOUT, **layout}
    return go.Figure(data=data, layout=merged, _validate=False)
