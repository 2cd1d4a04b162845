"""Complexity tab: where parameters and multiply-adds go, how they move with C, d, depth and
resolution, how published models compare at their cost, and the user's pinned configs.

Layout and wiring only; the charts and their data are in `charts`.
"""

from __future__ import annotations

import functools
from typing import Any

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


# Handlers ------------------------------------------------------------------------------
# Page handlers read the per-session Selection and keep the page as it was when a value is
# refused; the API twins take a config JSON (or the session's pins) and raise instead.

def _sweep(selection: Selection, variable: str, start: Any, stop: Any, points: Any,
           spacing: str, keep: bool) -> tuple[Any, str, str]:
    request = charts.SweepRequest(variable, start, stop, points, spacing, keep)
    data = charts.sweep_data(selection, request)
    csv_path = downloads.write_download(charts.sweep_csv(data), "resnext-sweep", ".csv")
    return charts.sweep_figure(data), data["note"], str(csv_path)


@keep_state
def draw_breakdown(selection: Selection, scale: str, group_by: str):
    return charts.breakdown_figure(charts.breakdown_data(selection, scale, group_by))


@keep_state
def draw_sweep(selection: Selection, variable: str, start: float, stop: float, points: float,
               spacing: str, keep: bool):
    return _sweep(selection, variable, start, stop, points, spacing, keep)


@keep_state
def draw_all(selection: Selection, scale: str, group_by: str, variable: str, start: float,
             stop: float, points: float, spacing: str, keep: bool):
    """Every chart that depends on the selection (the Architecture controls moved)."""
    breakdown = charts.breakdown_figure(charts.breakdown_data(selection, scale, group_by))
    try:
        sweep_plot, sweep_note, sweep_file = _sweep(selection, variable, start, stop, points,
                                                    spacing, keep)
    except ValueError as error:
        # A half-typed sweep range must not stop the other charts from following the config.
        sweep_plot, sweep_note, sweep_file = gr.skip(), f"**Sweep not redrawn:** {error}", gr.skip()
    accuracy = charts.accuracy_data(selection)
    return (breakdown, sweep_plot, sweep_note, sweep_file, charts.accuracy_figure(accuracy),
            charts.accuracy_note(accuracy))


@keep_state
def sweep_defaults(variable: str):
    """Range fields for a newly chosen sweep variable."""
    if variable not in charts.SWEEP_DEFAULTS:
        raise ValueError(f"sweep variable must be one of {list(charts.SWEEP_DEFAULTS)}")
    return charts.SWEEP_DEFAULTS[variable]


def _compare_outputs(pins: list[charts.Pin], note: str):
    data = charts.compare_data(pins)
    csv_path = downloads.write_download(charts.compare_csv(data), "resnext-pins", ".csv")
    return (pins, charts.compare_rows(data), charts.stage_compare_rows(data),
            charts.compare_figure(data), gr.update(choices=charts.pin_labels(pins), value=[]),
            note, str(csv_path) if pins else None, data)


def pin_current(selection: Selection, pins: list[charts.Pin]):
    pins, note = charts.pin(pins, selection)
    return _compare_outputs(pins, note)


def unpin_selected(pins: list[charts.Pin], labels: list[str] | None):
    if not labels:
        return _compare_outputs(pins, "Choose pins to remove first.")
    kept = charts.unpin(pins, labels)
    return _compare_outputs(kept, f"Removed {len(pins) - len(kept)} pin(s).")


def clear_pins(pins: list[charts.Pin]):
    return _compare_outputs([], f"Removed all {len(pins)} pin(s)." if pins else "")


@keep_state
def show_pins(pins: list[charts.Pin]):
    return _compare_outputs(pins, "")


@user_errors
def compare_json(pins: list[charts.Pin]) -> dict:
    """The pinned configs' figures (API endpoint /compare_pins)."""
    return charts.compare_data(pins)


@user_errors
def breakdown_json(config_json: str, scale: str, group_by: str) -> dict:
    """Params and MACs per stage and layer type of a config JSON (API endpoint /complexity_breakdown)."""
    return charts.breakdown_data(Selection.from_json(config_json), scale, group_by)


@user_errors
def sweep_json(config_json: str, variable: str, start: float, stop: float, points: float,
               spacing: str, keep: bool) -> dict:
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
            self.spacing = ui.Radio(list(charts.SPACINGS), value="geometric", label="Spacing",
                                    scale=2, min_width=160)
            self.keep = gr.Checkbox(True, label="Keep complexity", scale=3, min_width=200)
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
    def outputs(self) -> list[Any]:
        """`_compare_outputs` order, less the JSON (page) or with it (API)."""
        return [self.state, self.table, self.stage_table, self.plot, self.to_remove, self.note,
                self.csv]


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
    _api_endpoints(ctx, breakdown, sweep, pins)
    quiet = dict(api_visibility="private", trigger_mode="always_last", show_progress="hidden")
    all_inputs = [ctx.selection, breakdown.scale, breakdown.group_by, *sweep.inputs]
    all_outputs = [breakdown.plot, sweep.plot, sweep.note, sweep.csv, accuracy.plot,
                   accuracy.note]
    # The Architecture tab's controls set the Selection; every chart follows it.
    ctx.selection.change(draw_all, all_inputs, all_outputs, **quiet)
    ctx.demo.load(draw_all, all_inputs, all_outputs, **quiet)
    for control in (breakdown.scale, breakdown.group_by):
        control.input(draw_breakdown, [ctx.selection, breakdown.scale, breakdown.group_by],
                      breakdown.plot, **quiet)
    sweep_io = dict(fn=draw_sweep, inputs=[ctx.selection, *sweep.inputs],
                    outputs=[sweep.plot, sweep.note, sweep.csv], **quiet)
    # `select`, not `input` (which a dropdown re-fires on blur, resetting a typed From/To).
    sweep.variable.select(sweep_defaults, [sweep.variable], [sweep.start, sweep.stop],
                          api_visibility="private", show_progress="hidden").then(**sweep_io)
    sweep.points.release(**sweep_io)
    for control in (sweep.spacing, sweep.keep):
        control.input(**sweep_io)
    for number in (sweep.start, sweep.stop):
        number.submit(**sweep_io)
        number.blur(**sweep_io)

    page = dict(outputs=pins.outputs, api_visibility="private")
    pins.pin_button.click(_page(pin_current), [ctx.selection, pins.state], **page)
    pins.remove_button.click(_page(unpin_selected), [pins.state, pins.to_remove], **page)
    pins.clear_button.click(_page(clear_pins), [pins.state], **page)
    ctx.demo.load(_page(show_pins.__wrapped__), [pins.state], **page, show_progress="hidden")


def _page(handler: Any) -> Any:
    """A pin handler for the page: its outputs less the API's JSON; a refusal keeps them all."""
    @functools.wraps(handler)
    def page(*args: Any) -> Any:
        return handler(*args)[:-1]

    return keep_state(page)


def _api_endpoints(ctx: TabContext, breakdown: Breakdown, sweep: Sweep, pins: Pins) -> None:
    """Named endpoints (README: "HTTP API") on hidden triggers: each chart's data as JSON,
    and the session's pins; they raise errors to the caller."""
    with gr.Group(visible=False):
        config_in = gr.Textbox()
        compare_out = gr.JSON()
        chart_out = gr.JSON()
        (pin_button, unpin_button, clear_button, breakdown_button, sweep_button,
         accuracy_button, compare_button) = (gr.Button() for _ in range(7))
    api_pins = [*pins.outputs, compare_out]
    pin_button.click(user_errors(pin_current), [ctx.selection, pins.state], api_pins,
                     api_name="pin")
    unpin_button.click(user_errors(unpin_selected), [pins.state, pins.to_remove], api_pins,
                       api_name="unpin")
    clear_button.click(user_errors(clear_pins), [pins.state], api_pins, api_name="clear_pins")
    compare_button.click(compare_json, [pins.state], chart_out, api_name="compare_pins")
    breakdown_button.click(breakdown_json, [config_in, breakdown.scale, breakdown.group_by],
                           chart_out, api_name="complexity_breakdown")
    sweep_button.click(sweep_json, [config_in, *sweep.inputs], chart_out,
                       api_name="complexity_sweep")
    accuracy_button.click(accuracy_json, [config_in], chart_out, api_name="accuracy_vs_cost")
