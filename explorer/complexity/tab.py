"""Complexity tab: where parameters and multiply-adds go, how they move with C, d, depth and
resolution, how published models compare at their cost, and the user's pinned configs.

Layout and wiring only; the charts and their data are in `charts`.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import gradio as gr

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..selection import Selection
from . import charts
from ..shared import downloads

INTRO = (
    "Every number here is exact, computed by `resnext.complexity` without building weights, so "
    "the charts follow the Architecture tab's controls at once. **Parameters** count every "
    "learnable tensor; **MACs** are the multiply-adds of the convolutions and the fc layer for "
    "one image (FLOPs = 2 × MACs; BatchNorm, ReLU and pooling are not counted). Hover for "
    "exact values."
)
SCALE_CHOICES = [("absolute", "absolute"), ("share of total", "share")]
GROUPING_CHOICES = [("per stage", "stage"), ("per layer type", "layer type")]
VARIABLE_CHOICES = [(label, key) for key, label in charts.SWEEP_VARIABLES.items()]
DEFAULT_SWEEP = "cardinality"
DEFAULT_SWEEP_POINTS = 24
DEFAULT_SPACING = "geometric"
DEFAULT_KEEP = True


# The API's choices, from the one place each is defined (they show in the API page).
Scale = Literal[charts.SCALES]
Grouping = Literal[charts.GROUPINGS]
SweepVariable = Literal[tuple(charts.SWEEP_VARIABLES)]
Spacing = Literal[charts.SPACINGS]


# Handlers ------------------------------------------------------------------------------
# Page handlers read the per-session Selection, answer by name (`ui.by_name`) and keep the
# page as it was when a value is refused; the API's take a config JSON (or the session's
# pins) and raise instead.

def _sweep(selection: Selection, variable: str, start: Any, stop: Any, points: Any,
           spacing: str, keep: bool) -> dict[str, Any]:
    request = charts.SweepRequest(variable, start, stop, points, spacing, keep)
    data = charts.sweep_data(selection, request)
    csv_path = downloads.write_download(charts.sweep_csv(data), "resnext-sweep", ".csv")
    return {"sweep_plot": charts.sweep_figure(data), "sweep_note": data["note"],
            "sweep_csv": str(csv_path)}


def _breakdown(selection: Selection, scale: str, group_by: str) -> dict[str, Any]:
    return {"breakdown": charts.breakdown_figure(charts.breakdown_data(selection, scale,
                                                                        group_by))}


@keep_state
def draw_breakdown(selection: Selection, scale: str, group_by: str) -> dict[str, Any]:
    return _breakdown(selection, scale, group_by)


@keep_state
def draw_sweep(selection: Selection, variable: str, start: float, stop: float, points: float,
               spacing: str, keep: bool) -> dict[str, Any]:
    return _sweep(selection, variable, start, stop, points, spacing, keep)


@keep_state
def draw_all(selection: Selection, scale: str, group_by: str, variable: str, start: float,
             stop: float, points: float, spacing: str, keep: bool) -> dict[str, Any]:
    """Every chart that depends on the selection (the Architecture controls moved)."""
    try:
        sweep = _sweep(selection, variable, start, stop, points, spacing, keep)
    except ValueError as error:
        # A half-typed sweep range must not stop the other charts from following the config.
        sweep = {"sweep_note": f"**Sweep not redrawn:** {error}"}
    accuracy = charts.accuracy_data(selection)
    return {**_breakdown(selection, scale, group_by), **sweep,
            "accuracy_plot": charts.accuracy_figure(accuracy),
            "accuracy_note": charts.accuracy_note(accuracy)}


@keep_state
def sweep_defaults(variable: str) -> dict[str, Any]:
    """Range fields for a newly chosen sweep variable."""
    if variable not in charts.SWEEP_DEFAULTS:
        raise ValueError(f"sweep variable must be one of {list(charts.SWEEP_DEFAULTS)}")
    start, stop = charts.SWEEP_DEFAULTS[variable]
    return {"start": start, "stop": stop}


def _compare_outputs(pins: list[charts.Pin], note: str) -> dict[str, Any]:
    """What the pins fill, by `Pins.outputs` name; "json" is the API's copy of the data."""
    data = charts.compare_data(pins)
    csv_path = downloads.write_download(charts.compare_csv(data), "resnext-pins", ".csv")
    return {"pins": pins, "table": charts.compare_rows(data),
            "stage_table": charts.stage_compare_rows(data), "plot": charts.compare_figure(data),
            "to_remove": gr.update(choices=charts.pin_labels(pins), value=[]), "note": note,
            "csv": str(csv_path) if pins else None, "json": data}


def pin_current(selection: Selection, pins: list[charts.Pin]) -> dict[str, Any]:
    pins, note = charts.pin(pins, selection)
    return _compare_outputs(pins, note)


def unpin_selected(pins: list[charts.Pin], labels: list[str] | None) -> dict[str, Any]:
    if not labels:
        return _compare_outputs(pins, "Choose pins to remove first.")
    kept = charts.unpin(pins, labels)
    return _compare_outputs(kept, f"Removed {len(pins) - len(kept)} pin(s).")


def clear_pins(pins: list[charts.Pin]) -> dict[str, Any]:
    return _compare_outputs([], f"Removed all {len(pins)} pin(s)." if pins else "")


def show_pins(pins: list[charts.Pin]) -> dict[str, Any]:
    return _compare_outputs(pins, "")


@user_errors
def compare_json(pins: list[charts.Pin]) -> dict:
    """The pinned configs' figures (API endpoint /compare_pins)."""
    return charts.compare_data(pins)


@user_errors
def breakdown_json(config_json: str, scale: Scale = "absolute",
                   group_by: Grouping = "stage") -> dict:
    """Params and MACs per stage and layer type of a config JSON (API endpoint /complexity_breakdown)."""
    return charts.breakdown_data(Selection.from_json(config_json), scale, group_by)


@user_errors
def sweep_json(config_json: str, variable: SweepVariable = DEFAULT_SWEEP,
               start: int = charts.SWEEP_DEFAULTS[DEFAULT_SWEEP][0],
               stop: int = charts.SWEEP_DEFAULTS[DEFAULT_SWEEP][1],
               points: int = DEFAULT_SWEEP_POINTS, spacing: Spacing = DEFAULT_SPACING,
               keep: bool = DEFAULT_KEEP) -> dict:
    """One variable of a config JSON swept (API endpoint /complexity_sweep)."""
    request = charts.SweepRequest(variable, start, stop, points, spacing, keep)
    return charts.sweep_data(Selection.from_json(config_json), request)


@user_errors
def accuracy_json(config_json: str) -> dict:
    """Published top-1 errors vs MACs, and a config JSON's MACs (API /accuracy_vs_cost)."""
    return charts.accuracy_data(Selection.from_json(config_json))


# Layout ----------------------------------------------------------------------------------

class Breakdown:
    def __init__(self) -> None:
        gr.Markdown("### Where the parameters and multiply-adds go")
        with gr.Row():
            self.scale = ui.Radio(SCALE_CHOICES, value="absolute", label="Scale")
            self.group_by = ui.Radio(GROUPING_CHOICES, value="stage", label="Bars")
        self.plot = gr.Plot(show_label=False)


class Sweep:
    def __init__(self) -> None:
        gr.Markdown("### How they move")
        start, stop = charts.SWEEP_DEFAULTS[DEFAULT_SWEEP]
        with gr.Row(equal_height=True, elem_classes=["rx-wrap"]):
            self.variable = ui.Dropdown(VARIABLE_CHOICES, value=DEFAULT_SWEEP, label="Sweep",
                                        scale=2, min_width=160)
            self.start = ui.Number(start, precision=0, label="From", scale=1, min_width=90)
            self.stop = ui.Number(stop, precision=0, label="To", scale=1, min_width=90)
            self.points = ui.Slider(2, charts.MAX_SWEEP_POINTS, value=DEFAULT_SWEEP_POINTS,
                                    step=1, precision=0, label="Points", scale=2, min_width=160)
            self.spacing = ui.Radio(list(charts.SPACINGS), value=DEFAULT_SPACING,
                                    label="Spacing", scale=2, min_width=160)
            self.keep = gr.Checkbox(DEFAULT_KEEP, label="Keep complexity", scale=3,
                                    min_width=200)
        self.note = gr.Markdown()
        self.plot = gr.Plot(show_label=False)
        self.csv = gr.DownloadButton("Download the sweep (CSV)", size="sm", variant="secondary")

    @property
    def inputs(self) -> list[Any]:
        return [self.variable, self.start, self.stop, self.points, self.spacing, self.keep]


class Accuracy:
    def __init__(self) -> None:
        gr.Markdown("### Accuracy against cost: the paper's Table 3 and torchvision's weights")
        self.note = gr.Markdown()
        self.plot = gr.Plot(show_label=False)


class Pins:
    def __init__(self) -> None:
        self.state = gr.State([])  # per browser session: list[charts.Pin], at most MAX_PINS
        gr.Markdown(f"### Compare pinned configs (up to {charts.MAX_PINS}, kept for this session)")
        with gr.Row(equal_height=True):
            self.pin_button = gr.Button("Pin current config", variant="primary", scale=1,
                                        min_width=160)
            self.to_remove = ui.Dropdown([], value=[], multiselect=True, label="Pins to remove",
                                         scale=3, min_width=200)
            self.remove_button = gr.Button("Remove", scale=1, min_width=90)
            self.clear_button = gr.Button("Clear all", scale=1, min_width=90)
        self.note = gr.Markdown()
        self.table = gr.Dataframe(headers=charts.COMPARE_COLUMNS, interactive=False,
                                  elem_classes=["rx-table"])
        self.plot = gr.Plot(show_label=False)
        with gr.Accordion("Stage by stage (differences from the first pin)", open=False):
            self.stage_table = gr.Dataframe(headers=charts.STAGE_COMPARE_COLUMNS,
                                            interactive=False, elem_classes=["rx-table"])
        self.csv = gr.DownloadButton("Download the pins (CSV)", size="sm", variant="secondary")

    @property
    def outputs(self) -> dict[str, Any]:
        """What `_compare_outputs` fills, by name (the API adds its "json")."""
        return {"pins": self.state, "table": self.table, "stage_table": self.stage_table,
                "plot": self.plot, "to_remove": self.to_remove, "note": self.note,
                "csv": self.csv}


def build(ctx: TabContext) -> None:
    gr.Markdown(INTRO)
    breakdown = Breakdown()
    sweep = Sweep()
    accuracy = Accuracy()
    pins = Pins()
    _wire(ctx, breakdown, sweep, accuracy, pins)


# Wiring ----------------------------------------------------------------------------------

def _wire(ctx: TabContext, breakdown: Breakdown, sweep: Sweep, accuracy: Accuracy,
          pins: Pins) -> None:
    _api_endpoints(ctx, pins)
    quiet = dict(api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    sweep_outputs = {"sweep_plot": sweep.plot, "sweep_note": sweep.note, "sweep_csv": sweep.csv}
    charts_io = dict(**ui.by_name(draw_all, {"breakdown": breakdown.plot, **sweep_outputs,
                                             "accuracy_plot": accuracy.plot,
                                             "accuracy_note": accuracy.note}),
                     inputs=[ctx.selection, breakdown.scale, breakdown.group_by, *sweep.inputs],
                     **quiet)
    # The Architecture tab's controls set the Selection; every chart follows it.
    ctx.selection.change(**charts_io)
    ctx.demo.load(**charts_io)
    for control in (breakdown.scale, breakdown.group_by):
        control.input(**ui.by_name(draw_breakdown, {"breakdown": breakdown.plot}),
                      inputs=[ctx.selection, breakdown.scale, breakdown.group_by], **quiet)
    sweep_io = dict(**ui.by_name(draw_sweep, sweep_outputs), inputs=[ctx.selection, *sweep.inputs],
                    **quiet)
    # `select`, not `input` (which a dropdown re-fires on blur, resetting a typed From/To).
    sweep.variable.select(**ui.by_name(sweep_defaults, {"start": sweep.start, "stop": sweep.stop}),
                          inputs=[sweep.variable], api_visibility="private",
                          show_progress="hidden").then(**sweep_io)
    sweep.points.release(**sweep_io)
    for control in (sweep.spacing, sweep.keep):
        control.input(**sweep_io)
    for number in (sweep.start, sweep.stop):
        number.submit(**sweep_io)
        number.blur(**sweep_io)

    def page(handler: Any, inputs: list[Any], **options: Any) -> dict[str, Any]:
        return dict(**ui.by_name(_page(handler), pins.outputs), inputs=inputs,
                    api_visibility="private", **options)

    pins.pin_button.click(**page(pin_current, [ctx.selection, pins.state]))
    pins.remove_button.click(**page(unpin_selected, [pins.state, pins.to_remove]))
    pins.clear_button.click(**page(clear_pins, [pins.state]))
    ctx.demo.load(**page(show_pins, [pins.state], show_progress="hidden"))


def _page(handler: Any) -> Any:
    """A pin handler for the page: its outputs less the API's JSON; a refusal keeps them all."""
    @functools.wraps(handler)
    def page(*args: Any) -> dict[str, Any]:
        answer = handler(*args)
        answer.pop("json")
        return answer

    return keep_state(page)


def _api_endpoints(ctx: TabContext, pins: Pins) -> None:
    """Named endpoints (README: "HTTP API"); they raise errors to the caller. The session's
    pins are session state, which only events reach: those are events on hidden triggers.
    Each chart's data as JSON holds none: `gr.api`."""
    with gr.Group(visible=False):
        pins_json = gr.JSON()
        pin_button, unpin_button, clear_button, compare_button = (gr.Button() for _ in range(4))
    for button, handler, inputs, name in (
            (pin_button, pin_current, [ctx.selection, pins.state], "pin"),
            (unpin_button, unpin_selected, [pins.state, pins.to_remove], "unpin"),
            (clear_button, clear_pins, [pins.state], "clear_pins")):
        button.click(**ui.by_name(user_errors(handler), {**pins.outputs, "json": pins_json}),
                     inputs=inputs, api_name=name)
    compare_button.click(compare_json, [pins.state], pins_json, api_name="compare_pins")
    ui.api(breakdown_json, "complexity_breakdown")
    ui.api(sweep_json, "complexity_sweep")
    ui.api(accuracy_json, "accuracy_vs_cost")
