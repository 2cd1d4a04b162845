"""The Complexity tab's four charts and the data behind each, from `resnext.complexity` alone.

Every chart is made in two steps: a `*_data` function returns plain numbers (what the HTTP
API returns and what tests check against `resnext.complexity`), and a `*_figure` function
draws exactly those numbers. Counts are plotted raw (parameters, MACs, bytes) and formatted
by plotly's SI ticks, so a trace's y values *are* the library's integers.

Units and scope as in the rest of the app: parameters count every learnable tensor; MACs are
the multiply-adds of convs and the fc layer at batch 1 (FLOPs = 2 × MACs); memory is float32.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import resnext
from resnext import IMAGENET_DEPTHS, ROLE_LABELS, ROLES, ResNeXtConfig
from resnext.config import BOTTLENECK_WIDTH_RANGE, CARDINALITY_RANGE

from resnext.validation import whole_number

from ..selection import IMAGE_SIZE_RANGE, Selection
from ..shared import downloads
from ..shared import formatting as fmt
from ..shared import plots
from ..shared.plots import GRID_GREY, TEXT_GREY

# Paper data -------------------------------------------------------------------------------

# Xie et al. 2017, Table 2: (C, d) pairs that keep a conv2 block at ResNet-50's ~70k weights;
# the group-conv width C·d is 64, 80, 96, 112, 128.
PAPER_TABLE_2: tuple[tuple[int, int], ...] = ((1, 64), (2, 40), (4, 24), (8, 14), (32, 4))

# Xie et al. 2017, Table 3: ImageNet-1K top-1 error (%), 224×224 single crop, for the Table 2
# settings at 50 and 101 layers (stage blocks as Table 1 and torchvision).
PAPER_TABLE_3: dict[int, tuple[float, ...]] = {
    50: (23.9, 23.0, 22.6, 22.3, 22.2),
    101: (22.0, 21.7, 21.4, 21.3, 21.2),
}
# torchvision's weights are evaluated on 224×224 crops (resnext.PUBLISHED_WEIGHTS.crop_size).
PUBLISHED_CROP = 224

# Chart options ----------------------------------------------------------------------------

SCALES = ("absolute", "share")
GROUPINGS = ("stage", "layer type")
SWEEP_VARIABLES = {
    "cardinality": "cardinality C (paths per block)",
    "bottleneck_width": "bottleneck width d (channels per path in stage 1)",
    "depth": "depth (layers; standard ImageNet stage layouts)",
    "image_size": "input resolution (pixels per side)",
}
SWEEP_BOUNDS: dict[str, tuple[int, int]] = {
    "cardinality": CARDINALITY_RANGE,
    "bottleneck_width": BOTTLENECK_WIDTH_RANGE,
    "depth": (min(IMAGENET_DEPTHS), max(IMAGENET_DEPTHS)),
    "image_size": IMAGE_SIZE_RANGE,
}
SWEEP_DEFAULTS: dict[str, tuple[int, int]] = {
    "cardinality": (1, 64),
    "bottleneck_width": (1, 64),
    "depth": (26, 200),
    "image_size": (32, 512),
}
SPACINGS = ("geometric", "linear")
MAX_SWEEP_POINTS = 1024
MAX_PINS = 8
# Input sides labelled on a resolution sweep's axis (CIFAR, ImageNet crops and their steps).
RESOLUTION_TICKS = (16, 32, 64, 96, 128, 160, 224, 320, 448, 640, 1024)

# Style: transparent backgrounds and a mid grey for text and grid, readable on Gradio's light
# and dark themes alike (plotly figures don't follow the page's theme by themselves).
ROLE_COLORS = {"stem": "#9d9da4", "reduce": "#4c78a8", "grouped": "#f58518",
               "expand": "#54a24b", "shortcut": "#b279a2", "fc": "#e45756"}
SERIES_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2", "#eeca3b",
                 "#9d755d")


def _go():
    import plotly.graph_objects as go  # imported on first chart: keeps `import explorer` quick

    return go


def _style(fig, height: int, legend_y: float = 1.12, legend_anchor: str = "bottom"):
    plots.restyle(fig)
    fig.update_layout(
        height=height, font={"size": 13},
        margin={"l": 70, "r": 20, "t": 70, "b": 60},
        legend={"orientation": "h", "x": 0, "y": legend_y, "yanchor": legend_anchor,
                "bgcolor": "rgba(0,0,0,0)"},
        hoverlabel={"namelength": -1},
    )
    return fig


def selection_summary(selection: Selection) -> dict[str, Any]:
    return {"name": selection.config.name, "config": selection.config.to_dict(),
            "image_size": selection.image_size}


# 1. Breakdown -----------------------------------------------------------------------------

def breakdown_data(selection: Selection, scale: str = "absolute",
                   group_by: str = "stage") -> dict[str, Any]:
    """Params and MACs per (stage, layer type), absolute or as % of the network's total."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {GROUPINGS}, got {group_by!r}")
    report = resnext.complexity(selection.config, selection.image_size)
    table = report.by_segment_and_role()  # segment -> role -> (params, MACs)
    segments = [seg.name for seg in report.segments]

    def cell(segment: str, role: str, metric: int) -> int:
        return table[segment].get(role, (0, 0))[metric]

    def scaled(amounts: list[int], total: int) -> list[float] | list[int]:
        return [100.0 * a / total for a in amounts] if scale == "share" else amounts

    if group_by == "stage":
        # Bars are the stem, each stage and the head; stacks are layer types (Fig. 3 roles).
        categories = segments
        pairs = {role: [(seg, role) for seg in segments] for role in ROLES}
        labels = {role: ROLE_LABELS[role] for role in ROLES}
        category_labels = ["head (pool + fc)" if s == "head" else s for s in segments]
    else:
        # Bars are layer types; stacks are where in the network they sit.
        categories = list(ROLES)
        pairs = {seg: [(seg, role) for role in ROLES] for seg in segments}
        labels = {seg: seg for seg in segments}
        category_labels = [ROLE_LABELS[role] for role in ROLES]
    series = [{"key": key, "label": labels[key],
               "params": scaled([cell(s, r, 0) for s, r in cells], report.params),
               "macs": scaled([cell(s, r, 1) for s, r in cells], report.macs)}
              for key, cells in pairs.items()]
    return {
        **selection_summary(selection),
        "scale": scale, "group_by": group_by,
        "categories": categories, "category_labels": category_labels,
        "series": series,
        "total_params": report.params, "total_macs": report.macs,
    }


def breakdown_figure(data: dict[str, Any]):
    go = _go()
    share = data["scale"] == "share"
    fig = plots.subplots(rows=1, cols=2, horizontal_spacing=0.09,
                    subplot_titles=(f"Parameters (total {data['total_params']:,})",
                                    f"Multiply-adds (total {data['total_macs']:,} MACs)"))
    by_stage = data["group_by"] == "stage"
    for index, series in enumerate(data["series"]):
        color = (ROLE_COLORS[series["key"]] if by_stage
                 else SERIES_COLORS[index % len(SERIES_COLORS)])
        for col, (metric, unit) in enumerate((("params", "parameters"), ("macs", "MACs")), 1):
            hover = ("%{y:.2f} % of all " + unit if share else "%{y:,} " + unit)
            fig.add_trace(go.Bar(
                x=data["category_labels"], y=series[metric], name=series["label"],
                legendgroup=series["key"], showlegend=col == 1, marker_color=color,
                hovertemplate=f"{series['label']} in %{{x}}: {hover}<extra></extra>"),
                row=1, col=col)
    fig.update_layout(barmode="stack")
    where = "stage" if by_stage else "layer type"
    fig.update_xaxes(title_text=where)
    if share:
        fig.update_yaxes(title_text="% of the network's parameters", ticksuffix=" %", row=1, col=1)
        fig.update_yaxes(title_text="% of the network's MACs", ticksuffix=" %", row=1, col=2)
    else:
        fig.update_yaxes(title_text="parameters", tickformat="~s", row=1, col=1)
        fig.update_yaxes(title_text="MACs (conv + fc, batch 1)", tickformat="~s", row=1, col=2)
    return _style(fig, height=430)


# 2. Sweep ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepRequest:
    variable: str
    start: int
    stop: int
    points: int = 24
    spacing: str = "geometric"
    keep_complexity: bool = False

    def __post_init__(self) -> None:
        if self.variable not in SWEEP_VARIABLES:
            raise ValueError(f"sweep variable must be one of {list(SWEEP_VARIABLES)}, "
                             f"got {self.variable!r}")
        low, high = SWEEP_BOUNDS[self.variable]
        for name in ("start", "stop"):
            number = _whole(getattr(self, name), f"sweep {name}")
            if not low <= number <= high:
                raise ValueError(f"sweep {name} for {self.variable} must be in [{low}, {high}], "
                                 f"got {number}")
            object.__setattr__(self, name, number)
        if self.start > self.stop:
            raise ValueError(f"sweep start ({self.start}) must not exceed stop ({self.stop})")
        points = _whole(self.points, "number of points")
        if not 2 <= points <= MAX_SWEEP_POINTS:
            raise ValueError(f"number of points must be in [2, {MAX_SWEEP_POINTS}], got {points}")
        object.__setattr__(self, "points", points)
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {SPACINGS}, got {self.spacing!r}")
        if not isinstance(self.keep_complexity, bool):
            raise ValueError(f"keep_complexity must be true or false, got {self.keep_complexity!r}")

    @property
    def keeps_complexity(self) -> bool:
        """'Keep complexity' sets d from C (Table 2), so it only means something for C sweeps."""
        return self.keep_complexity and self.variable == "cardinality"

    def values(self, must_include: tuple[int, ...] = ()) -> list[int]:
        """The swept values: `points` spread over [start, stop], plus `must_include` (the
        current value, Table 2's C) where in range, so the line passes through those marks."""
        extra = {v for v in must_include if self.start <= v <= self.stop}
        if self.variable == "depth":
            extra = {v for v in extra if v in IMAGENET_DEPTHS}
        return sorted(set(self._spread()) | extra)

    def _spread(self) -> list[int]:
        if self.variable == "depth":
            # Depth is not a free integer: only the standard stage layouts have one.
            return [d for d in sorted(IMAGENET_DEPTHS) if self.start <= d <= self.stop]
        n = min(self.points, self.stop - self.start + 1)
        if n == 1:
            return [self.start]
        if self.spacing == "linear":
            raw = (self.start + (self.stop - self.start) * i / (n - 1) for i in range(n))
        else:
            ratio = math.log(self.stop / self.start)
            raw = (self.start * math.exp(ratio * i / (n - 1)) for i in range(n))
        return sorted({int(round(v)) for v in raw})


def _whole(value: Any, what: str) -> int:
    return whole_number(what, value)


def variable_of(selection: Selection, variable: str) -> int:
    if variable == "depth":
        return selection.config.depth
    if variable == "image_size":
        return selection.image_size
    return getattr(selection.config, variable)


def _point(selection: Selection, request: SweepRequest, value: int) -> Selection:
    """The current selection with the swept variable set to `value` (ValueError if invalid)."""
    cfg = selection.config
    if request.variable == "cardinality":
        width = resnext.preserving_width(value) if request.keeps_complexity else cfg.bottleneck_width
        return Selection(cfg.replace(cardinality=value, bottleneck_width=width), selection.image_size)
    if request.variable == "bottleneck_width":
        return Selection(cfg.replace(bottleneck_width=value), selection.image_size)
    if request.variable == "depth":
        return Selection(cfg.replace(stage_blocks=IMAGENET_DEPTHS[value]), selection.image_size)
    return Selection(cfg, value)


def _cost(selection: Selection) -> dict[str, Any]:
    report = resnext.complexity(selection.config, selection.image_size)
    cfg = selection.config
    return {"cardinality": cfg.cardinality, "bottleneck_width": cfg.bottleneck_width,
            "group_width": cfg.group_width(0), "depth": cfg.depth,
            "image_size": selection.image_size, "params": report.params, "macs": report.macs}


def sweep_data(selection: Selection, request: SweepRequest) -> dict[str, Any]:
    """Params and MACs of the current config with one variable swept; invalid points skipped."""
    points, skipped = [], []
    marks = [variable_of(selection, request.variable)]
    if request.keeps_complexity:
        marks += [cardinality for cardinality, _ in PAPER_TABLE_2]
    for value in request.values(tuple(marks)):
        try:
            points.append({"value": value, **_cost(_point(selection, request, value))})
        except ValueError as error:  # the config validates itself: this point can't exist
            skipped.append({"value": value, "reason": str(error)})
    table_2 = []
    if request.keeps_complexity:
        # The paper's five (C, d) settings with everything else as the current config.
        for cardinality, width in PAPER_TABLE_2:
            try:
                cfg = selection.config.replace(cardinality=cardinality, bottleneck_width=width)
                table_2.append(_cost(Selection(cfg, selection.image_size)))
            except ValueError as error:
                skipped.append({"value": cardinality, "reason": f"Table 2 point: {error}"})
    return {
        **selection_summary(selection),
        "variable": request.variable, "start": request.start, "stop": request.stop,
        "spacing": request.spacing, "keep_complexity": request.keeps_complexity,
        "points": points, "skipped": skipped, "table_2": table_2,
        "current": {"value": variable_of(selection, request.variable), **_cost(selection)},
        "note": sweep_note(request, points, skipped),
    }


def sweep_note(request: SweepRequest, points: list[dict], skipped: list[dict]) -> str:
    lines = [f"{len(points)} point{'s' * (len(points) != 1)} computed exactly."]
    if request.variable == "depth":
        lines.append("Depth steps through the standard layouts "
                     + ", ".join(f"{d} = {IMAGENET_DEPTHS[d]}" for d in sorted(IMAGENET_DEPTHS))
                     + "; the number of points and spacing don't apply.")
    if request.keep_complexity and not request.keeps_complexity:
        lines.append("*Keep complexity* sets d from C, so it only applies to cardinality sweeps.")
    if request.keeps_complexity:
        floor = [p["value"] for p in points if p["bottleneck_width"] == 1
                 and p["cardinality"] > 1 and resnext.preserving_width(p["cardinality"]) == 1]
        if floor:
            lines.append(f"From C = {floor[0]} the complexity-preserving d rounds to 1, the "
                         "narrowest path there is, so the cost grows again with C.")
    if skipped:
        values = [s["value"] for s in skipped]
        shown = ", ".join(map(str, values[:6])) + (f", … ({len(values)} in all)"
                                                   if len(values) > 6 else "")
        lines.append(f"**Skipped {len(values)} value{'s' * (len(values) != 1)}** invalid with "
                     f"the other settings ({shown}); for example {request.variable} = "
                     f"{values[0]}: {skipped[0]['reason']}.")
    return " ".join(lines)


def sweep_csv(data: dict[str, Any]) -> str:
    """Every point of a sweep (the `sweep_data` rows) as CSV text."""
    columns = ["value", "cardinality", "bottleneck_width", "group_width", "depth",
               "image_size", "params", "macs"]
    return downloads.csv_text(columns, ([p[c] for c in columns] for p in data["points"]))


def _sweep_axis(data: dict[str, Any]) -> dict[str, Any]:
    """The swept variable's axis: log for geometric spacing, ticks where they read well."""
    variable, points = data["variable"], data["points"]
    log = data["spacing"] == "geometric" and variable != "depth"
    axis: dict[str, Any] = {"type": "log"} if log else {}
    if log and variable in ("cardinality", "bottleneck_width"):
        axis.update(dtick=math.log10(2), tick0=0)  # ticks at 1, 2, 4, 8, ...
    if variable == "depth":
        axis.update(tickvals=sorted(IMAGENET_DEPTHS))
    if variable == "image_size":
        # Plotly's log ticks label every 1..9 of a decade ("2 3 4 5 ... 100 2 3"), which
        # overlap: label the usual input sides only.
        values = [p["value"] for p in points]
        low, high = min(values), max(values)
        axis.update(tickvals=[v for v in RESOLUTION_TICKS if low <= v <= high] or values)
    return axis


def _sweep_axis_title(data: dict[str, Any]) -> str:
    if data["keep_complexity"]:
        return "cardinality C (d = preserving_width(C), paper Table 2)"
    return SWEEP_VARIABLES[data["variable"]]


def sweep_figure(data: dict[str, Any]):
    go = _go()
    fig = plots.subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                         subplot_titles=("Parameters", "Multiply-adds (MACs, conv + fc, batch 1)"))
    points, current = data["points"], data["current"]

    def hover(unit: str) -> str:
        return ("C = %{customdata[0]}, d = %{customdata[1]} (C·d = %{customdata[2]}), "
                "depth %{customdata[3]}, %{customdata[4]} px<br>%{y:,} " + unit + "<extra></extra>")

    def details(rows: list[dict]) -> list[list[int]]:
        return [[r["cardinality"], r["bottleneck_width"], r["group_width"], r["depth"],
                 r["image_size"]] for r in rows]

    for row, (metric, unit) in enumerate((("params", "parameters"), ("macs", "MACs")), 1):
        fig.add_trace(go.Scatter(
            x=[p["value"] for p in points], y=[p[metric] for p in points], mode="lines+markers",
            name="sweep" + (" (d from C, keep complexity)" if data["keep_complexity"] else ""),
            legendgroup="sweep", showlegend=row == 1, line={"color": SERIES_COLORS[0], "width": 2},
            marker={"size": 5}, customdata=details(points), hovertemplate=hover(unit)),
            row=row, col=1)
        if data["table_2"]:
            fig.add_trace(go.Scatter(
                x=[p["cardinality"] for p in data["table_2"]],
                y=[p[metric] for p in data["table_2"]], mode="markers+text",
                name="paper Table 2 (C, d)", legendgroup="table2", showlegend=row == 1,
                marker={"symbol": "diamond", "size": 12, "color": SERIES_COLORS[1]},
                text=[f"{p['cardinality']}×{p['bottleneck_width']}d" for p in data["table_2"]],
                textposition="bottom center", textfont={"color": TEXT_GREY, "size": 11},
                customdata=details(data["table_2"]),
                hovertemplate="paper Table 2: " + hover(unit)), row=row, col=1)
        fig.add_trace(go.Scatter(
            x=[current["value"]], y=[current[metric]], mode="markers",
            name=f"current: {data['name']}", legendgroup="current", showlegend=row == 1,
            marker={"symbol": "star", "size": 16, "color": SERIES_COLORS[3],
                    "line": {"width": 1, "color": "white"}},
            customdata=details([current]), hovertemplate="current config: " + hover(unit)),
            row=row, col=1)
    fig.update_xaxes(**_sweep_axis(data))
    fig.update_xaxes(title_text=_sweep_axis_title(data), row=2, col=1)
    # From zero: Table 2's "nearly flat" line should look as flat as it is.
    fig.update_yaxes(tickformat="~s", rangemode="tozero")
    fig.update_yaxes(title_text="parameters", row=1, col=1)
    fig.update_yaxes(title_text="MACs", row=2, col=1)
    return _style(fig, height=560, legend_y=1.08)


# 3. Accuracy vs cost ----------------------------------------------------------------------

def accuracy_data(selection: Selection) -> dict[str, Any]:
    """Published ImageNet top-1 errors against the GMACs the library computes for each."""
    points = []
    for depth, errors in PAPER_TABLE_3.items():
        for (cardinality, width), error in zip(PAPER_TABLE_2, errors):
            cfg = ResNeXtConfig(cardinality=cardinality, bottleneck_width=width,
                                stage_blocks=IMAGENET_DEPTHS[depth])
            points.append({
                "source": f"paper Table 3, {depth}-layer", "label": f"{cardinality}×{width}d",
                "name": cfg.name, "macs": resnext.complexity(cfg, PUBLISHED_CROP).macs,
                "top1_error": error, "top1": None})
    for weights in resnext.PUBLISHED_WEIGHTS.values():
        version = weights.name.rsplit("_", 1)[1]
        points.append({
            "source": f"torchvision {version}", "label": f"{weights.preset} {version}",
            "name": weights.name,
            "macs": resnext.complexity(resnext.PRESETS[weights.preset], weights.crop_size).macs,
            # torchvision publishes accuracy; the paper, error. One axis: error = 100 − top-1.
            "top1_error": round(100.0 - weights.top1, 3), "top1": weights.top1})
    current = resnext.complexity(selection.config, selection.image_size).macs
    near: dict[str, list[str]] = {}
    for p in points:
        if abs(p["macs"] - current) <= 0.1 * current:
            near.setdefault(p["source"], []).append(p["label"])
    return {**selection_summary(selection), "points": points, "current_macs": current,
            "within_10_percent": near}


def accuracy_note(data: dict[str, Any]) -> str:
    gmacs = data["current_macs"] / 1e9
    head = (f"**{data['name']}** at {data['image_size']}×{data['image_size']}: "
            f"{gmacs:.3f} GMACs. ")
    if data["within_10_percent"]:
        return head + "Published models within ±10 % of that cost: " + "; ".join(
            f"{source}: {', '.join(labels)}" for source, labels in data["within_10_percent"].items()
        ) + "."
    return head + "No published model in this chart costs within ±10 % of that."


ACCURACY_HEIGHT = 520
_ACCURACY_MARGIN = {"l": 70, "r": 20, "t": 60, "b": 60}


def accuracy_figure(data: dict[str, Any]):
    go = _go()
    fig = go.Figure()
    sources = list(dict.fromkeys(p["source"] for p in data["points"]))
    for index, source in enumerate(sources):
        rows = [p for p in data["points"] if p["source"] == source]
        paper = source.startswith("paper")
        fig.add_trace(go.Scatter(
            x=[p["macs"] for p in rows], y=[p["top1_error"] for p in rows],
            mode="lines+markers" if paper else "markers", name=source,
            marker={"size": 10, "color": SERIES_COLORS[index % len(SERIES_COLORS)],
                    "symbol": "circle" if paper else "diamond"},
            line={"width": 1, "dash": "dot"},
            customdata=[[p["name"], p["source"]] for p in rows],
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>%{x:,} MACs at 224×224"
                          "<br>top-1 error %{y} %<extra></extra>"))
    errors = [p["top1_error"] for p in data["points"]]
    low, high = min(errors) - 0.8, max(errors) + 0.8
    fig.add_trace(go.Scatter(
        x=[data["current_macs"]] * 2, y=[low, high], mode="lines",
        name=f"current: {data['name']} at {data['image_size']} px",
        line={"color": SERIES_COLORS[3], "width": 2, "dash": "dash"},
        hovertemplate="current config: %{x:,} MACs<extra></extra>"))
    costs = [p["macs"] for p in data["points"]] + [data["current_macs"]]
    # Log axis with room on the left for the labels of the cheapest points.
    x_range = [math.log10(min(costs) / 1.8), math.log10(max(costs) * 1.15)]
    for annotation in _point_labels(data["points"], x_range, (low, high)):
        fig.add_annotation(annotation)
    fig.update_xaxes(type="log", range=x_range, tickformat="~s",
                     title_text="multiply-adds (MACs, conv + fc, batch 1; published models at "
                                "224×224)")
    fig.update_yaxes(title_text="ImageNet top-1 error (%, lower is better)", range=[low, high])
    fig = _style(fig, height=ACCURACY_HEIGHT, legend_y=1.02)
    fig.update_layout(margin=_ACCURACY_MARGIN)
    return fig


def _point_labels(points: list[dict], x_range: list[float], y_range: tuple[float, float],
                  plot_width: float = 1000.0, gap: float = 15.0) -> list[dict]:
    """One label per point naming its source, pushed apart vertically where they'd overlap.

    Paper points are labelled to the right and torchvision's to the left: both sources often
    sit at the same cost (the same architectures). Positions are worked out in pixels of a
    typical plot; each label keeps an arrow to its point.
    """
    plot_height = ACCURACY_HEIGHT - _ACCURACY_MARGIN["t"] - _ACCURACY_MARGIN["b"]
    low, high = y_range

    def pixels(point: dict) -> tuple[float, float]:
        x = (math.log10(point["macs"]) - x_range[0]) / (x_range[1] - x_range[0]) * plot_width
        y = (high - point["top1_error"]) / (high - low) * plot_height  # 0 at the top
        return x, y

    labels: list[dict] = []
    placed: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for point in sorted(points, key=lambda p: -p["top1_error"]):
        paper = point["source"].startswith("paper")
        x, y = pixels(point)
        label_y = y
        for other_x, other_y in placed[paper]:
            if abs(other_x - x) < 170 and label_y < other_y + gap:
                label_y = other_y + gap
        placed[paper].append((x, label_y))
        source = "paper" if paper else "torchvision"
        labels.append({
            "x": math.log10(point["macs"]), "y": point["top1_error"],
            "text": f"{source} {point['label']}", "showarrow": True, "arrowhead": 0,
            "arrowwidth": 1, "arrowcolor": GRID_GREY, "ax": 28 if paper else -28,
            "ay": label_y - y, "xanchor": "left" if paper else "right",
            "font": {"size": 11, "color": TEXT_GREY}})
    return labels


# 4. Compare pinned configs ----------------------------------------------------------------

# (key, panel title, unit): titles short enough that five panels fit side by side on an
# 800 px page; the hover text says the rest (float32 bytes, conv + fc MACs).
COMPARE_METRICS = (
    ("params", "params", ""),
    ("macs", "MACs", ""),
    ("activation_bytes", "activations", "B"),
    ("weight_bytes", "weights", "B"),
    ("depth", "layers", ""),
)
COMPARE_COLUMNS = ["#", "network", "input", "stem · form · classes", "params", "GMACs",
                   "activations", "weights", "depth"]


@dataclass(frozen=True)
class Pin:
    """A pinned config. Its number (and so its colour) stays the same while others are
    removed, so "#3" means the same network for as long as it is pinned."""

    number: int
    selection: Selection

    @property
    def label(self) -> str:
        return f"#{self.number} {self.selection.config.name} · {self.selection.image_size} px"

    @property
    def color(self) -> str:
        return SERIES_COLORS[(self.number - 1) % len(SERIES_COLORS)]


def pin(pins: list[Pin], selection: Selection) -> tuple[list[Pin], str]:
    """A new pin list with `selection` appended (at most MAX_PINS; a repeat is not added)."""
    for existing in pins:
        if existing.selection == selection:
            return list(pins), f"Already pinned as #{existing.number}."
    if len(pins) >= MAX_PINS:
        raise ValueError(f"at most {MAX_PINS} configs can be pinned; remove one first")
    added = Pin(max((p.number for p in pins), default=0) + 1, selection)
    return [*pins, added], f"Pinned {added.label}."


def pin_labels(pins: list[Pin]) -> list[str]:
    return [p.label for p in pins]


def unpin(pins: list[Pin], labels: list[str]) -> list[Pin]:
    """The pin list without the pins whose labels are given (unknown labels are an error)."""
    known = pin_labels(pins)
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ValueError(f"not pinned: {unknown}; pinned are {known}")
    return [p for p in pins if p.label not in labels]


def compare_data(pins: list[Pin]) -> dict[str, Any]:
    rows = []
    for item in pins:
        selection = item.selection
        report = resnext.complexity(selection.config, selection.image_size)
        rows.append({"number": item.number, "label": item.label, "color": item.color,
                     **selection_summary(selection),
                     "params": report.params, "macs": report.macs,
                     "activation_bytes": report.activation_bytes,
                     "weight_bytes": report.weight_bytes, "depth": report.depth,
                     "stages": [{"stage": seg.name, "output": f"{seg.out_height}×{seg.out_width}",
                                 "channels": seg.out_channels, "group_width": seg.group_width,
                                 "blocks": seg.blocks, "params": seg.params, "macs": seg.macs}
                                for seg in report.segments]})
    return {"pins": rows, "max_pins": MAX_PINS}


def compare_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for pin_row in data["pins"]:
        cfg = pin_row["config"]
        rows.append([f"#{pin_row['number']}", pin_row["name"], f"{pin_row['image_size']} px",
                     f"{cfg['stem']} · ({cfg['block_form']}) · {cfg['num_classes']:,}",
                     f"{pin_row['params']:,}", f"{pin_row['macs'] / 1e9:.3f}",
                     fmt.byte_size(pin_row["activation_bytes"]),
                     fmt.byte_size(pin_row["weight_bytes"]), str(pin_row["depth"])])
    return rows


STAGE_COMPARE_COLUMNS = ["stage", "pin", "output", "channels", "C·d", "blocks", "params",
                         "Δ params vs first pin", "MACs", "Δ MACs vs first pin"]


def stage_compare_rows(data: dict[str, Any]) -> list[list[str]]:
    """Stage by stage, each pin's shape and cost, and its difference from the first pin's
    same stage (a stage the first pin lacks counts from zero)."""
    pins = data["pins"]
    if not pins:
        return []
    first = {row["stage"]: row for row in pins[0]["stages"]}
    order: list[str] = []
    for pin_row in pins:
        order += [row["stage"] for row in pin_row["stages"] if row["stage"] not in order]
    rows = []
    for stage in order:
        for pin_row in pins:
            row = next((r for r in pin_row["stages"] if r["stage"] == stage), None)
            if row is None:
                continue
            base = first.get(stage, {"params": 0, "macs": 0})
            same = pin_row is pins[0]
            rows.append([stage, f"#{pin_row['number']}", row["output"], f"{row['channels']:,}",
                         f"{row['group_width']:,}" if row["group_width"] else "–",
                         str(row["blocks"]) if row["blocks"] else "–", f"{row['params']:,}",
                         "–" if same else f"{row['params'] - base['params']:+,}",
                         f"{row['macs']:,}", "–" if same else f"{row['macs'] - base['macs']:+,}"])
    return rows


def compare_csv(data: dict[str, Any]) -> str:
    """The pins' totals and every stage, one line per (pin, stage), as CSV text."""
    columns = ["pin", "network", "image_size", "config", "stage", "output", "channels",
               "group_width", "blocks", "params", "macs"]
    lines = []
    for pin_row in data["pins"]:
        common = [pin_row["number"], pin_row["name"], pin_row["image_size"],
                  json.dumps(pin_row["config"], separators=(",", ":"))]
        for row in pin_row["stages"]:
            lines.append([*common, row["stage"], row["output"], row["channels"],
                          row["group_width"], row["blocks"], row["params"], row["macs"]])
        lines.append([*common, "total", "", "", "", sum(pin_row["config"]["stage_blocks"]),
                      pin_row["params"], pin_row["macs"]])
    return downloads.csv_text(columns, lines)


def compare_figure(data: dict[str, Any]):
    go = _go()
    fig = plots.subplots(rows=1, cols=len(COMPARE_METRICS), horizontal_spacing=0.06,
                    subplot_titles=[title for _, title, _ in COMPARE_METRICS])
    for pin_row in data["pins"]:
        for col, (key, title, suffix) in enumerate(COMPARE_METRICS, 1):
            value_format = "%{y:,}" + (" bytes" if suffix else "")
            fig.add_trace(go.Bar(
                x=[f"#{pin_row['number']}"], y=[pin_row[key]], name=pin_row["label"],
                legendgroup=pin_row["label"], showlegend=col == 1,
                marker_color=pin_row["color"],
                hovertemplate=f"{pin_row['label']}<br>{title}: {value_format}<extra></extra>"),
                row=1, col=col)
    for col, (_, _, suffix) in enumerate(COMPARE_METRICS, 1):
        fig.update_yaxes(tickformat="~s", ticksuffix=suffix, rangemode="tozero", row=1, col=col)
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group", bargap=0.15)
    if not data["pins"]:
        fig.add_annotation(text="Nothing pinned yet: press “Pin current config”.",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                           font={"size": 15, "color": TEXT_GREY})
    return _style(fig, height=420, legend_y=-0.2, legend_anchor="top")
