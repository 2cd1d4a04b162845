"""The one way the app makes plotly figures, in one style readable on light and dark pages.

`figure(data, layout)` builds from plain dicts, skipping plotly's per-property validation:
validation makes a small two-panel figure cost ~45 ms to build, and a slider change has a
budget of ~50 ms in all; the dicts are written against plotly's schema and the tests read
the traces back. `subplots(...)` is for figures built with plotly's helpers (make_subplots,
add_trace) where that cost does not matter; `restyle` gives them the same look.
"""

from __future__ import annotations

from typing import Any

# Transparent backgrounds, mid-grey text and faint grids: readable on Gradio's light and
# dark themes alike (plotly's default templates assume a white page).
TEXT_GREY = "#7c828c"
GRID_GREY = "rgba(128, 128, 128, 0.25)"
_AXIS = {"gridcolor": GRID_GREY, "linecolor": GRID_GREY, "zerolinecolor": GRID_GREY,
         "automargin": True}

BASE_LAYOUT: dict[str, Any] = {
    "template": "none",
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"size": 12, "color": TEXT_GREY},
    "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
    "legend": {"orientation": "h", "y": -0.2, "bgcolor": "rgba(0,0,0,0)"},
}


def figure(data: list[dict[str, Any]], layout: dict[str, Any]):
    import plotly.graph_objects as go

    merged = {**BASE_LAYOUT, **layout}
    for name, axis in merged.items():
        if name.startswith(("xaxis", "yaxis")):
            merged[name] = {**_AXIS, **axis}
    return go.Figure(data=data, layout=merged, _validate=False)


def subplots(**kwargs: Any):
    """A figure with several panels (plotly's make_subplots), in the same theme-safe style."""
    from plotly.subplots import make_subplots

    return restyle(make_subplots(**kwargs))


def restyle(fig):
    """Give a figure built with plotly's helpers (e.g. make_subplots) the same theme-safe look."""
    fig.update_layout(template="none", paper_bgcolor=BASE_LAYOUT["paper_bgcolor"],
                      plot_bgcolor=BASE_LAYOUT["plot_bgcolor"], font=BASE_LAYOUT["font"])
    fig.update_xaxes(**_AXIS)
    fig.update_yaxes(**_AXIS)
    # Subplot titles are annotations: give them the text grey too.
    fig.update_annotations(font_color=TEXT_GREY)
    return fig
