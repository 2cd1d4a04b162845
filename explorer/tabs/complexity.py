"""Complexity tab: where parameters and multiply-adds go, how they move with C, d, depth and
resolution, how published models compare at their cost, and the user's pinned configs.

Layout and wiring only; the charts and their data are in `services.complexity_charts`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..context import TabContext
from ..errors import user_errors
from ..selection import Selection
from ..services import complexity_charts as charts

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


# Handlers ------------------------------------------------------------------------------
# Browser handlers read the per-session Selection; API twins take a config JSON instead.

def _sweep_request(variable: str, start: Any, stop: Any, points: Any, spacing: str,
                   keep: bool) -> charts.SweepRequest:
    return charts.SweepRequest(variable, start, stop, points, spacing, keep)


@user_errors
def draw_breakdown(selection: Selection, scale: str, group_by: str):
    return charts.breakdown_figure(charts.breakdown_data(selection, scale, group_by))


@user_errors
def draw_sweep(selection: Selection, variable: str, start: float, stop: float, points: float,
               spacing: str, keep: bool):
    data = charts.sweep_data(selection, _sweep_request(variable, start, stop, points, spacing,
                                                       keep))
    return charts.sweep_figure(data), data["note"]


@user_errors
def draw_all(selection: Selection, scale: str, group_by: str, variable: str, start: float,
             stop: float, points: float, spacing: str, keep: bool):
    """Every chart that depends on the selection (the Architecture controls moved)."""
    breakdown = charts.breakdown_figure(charts.breakdown_data(selection, scale, group_by))
    try:
        sweep_plot, sweep_note = draw_sweep.__wrapped__(selection, variable, start, stop,
                                                        points, spacing, keep)
    except ValueError as error:
        # A half-typed sweep range must not stop the other charts from following the config.
        sweep_plot, sweep_note = gr.update(), f"**Sweep not redrawn:** {error}"
    accuracy = charts.accuracy_data(selection)
    return (breakdown, sweep_plot, sweep_note, charts.accuracy_figure(accuracy),
            charts.accuracy_note(accuracy))


@user_errors
def sweep_defaults(variable: str):
    """Range fields for a newly chosen sweep variable."""
    if variable not in charts.SWEEP_DEFAULTS:
        raise ValueError(f"sweep variable must be one of {list(charts.SWEEP_DEFAULTS)}")
    start, stop = charts.SWEEP_DEFAULTS[variable]
    return start, stop


def _compare_outputs(pins: list[Selection], note: str):
    data = charts.compare_data(pins)
    labels = charts.pin_labels(pins)
    return (pins, charts.compare_rows(data), charts.compare_figure(data),
            gr.update(choices=labels, value=[]), note, data)


@user_errors
def pin_current(selection: Selection, pins: list[Selection]):
    pins, note = charts.pin(pins, selection)
    return _compare_outputs(pins, note)


@user_errors
def unpin_selected(pins: list[Selection], labels: list[str] | None):
    if not labels:
        return _compare_outputs(pins, "Choose pins to remove first.")
    kept = charts.unpin(pins, labels)
    return _compare_outputs(kept, f"Removed {len(pins) - len(kept)} pin(s).")


@user_errors
def clear_pins(pins: list[Selection]):
    return _compare_outputs([], f"Removed all {len(pins)} pin(s)." if pins else "")


@user_errors
def show_pins(pins: list[Selection]):
    return _compare_outputs(pins, "")


@user_errors
def compare_json(pins: list[Selection]) -> dict:
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
    request = _sweep_request(variable, start, stop, points, spacing, keep)
    return charts.sweep_data(Selection.from_json(config_json), request)


@user_errors
def accuracy_json(config_json: str) -> dict:
    """Published top-1 errors vs MACs, and a config JSON's MACs (API /accuracy_vs_cost)."""
    return charts.accuracy_data(Selection.from_json(config_json))


# Layout ----------------------------------------------------------------------------------

def build(ctx: TabContext) -> None:
    pins = gr.State([])  # per browser session: list[Selection], at most charts.MAX_PINS
    gr.Markdown(INTRO)

    gr.Markdown("### Where the parameters and multiply-adds go")
    with gr.Row():
        scale = gr.Radio(SCALE_CHOICES, value="absolute", label="Scale")
        group_by = gr.Radio(GROUPING_CHOICES, value="stage", label="Bars")
    breakdown_plot = gr.Plot(show_label=False)

    gr.Markdown("### How they move")
    start0, stop0 = charts.SWEEP_DEFAULTS["cardinality"]
    with gr.Row(equal_height=True):
        variable = gr.Dropdown(VARIABLE_CHOICES, value="cardinality", label="Sweep", scale=2)
        start = gr.Number(start0, precision=0, label="From", scale=1, min_width=90)
        stop = gr.Number(stop0, precision=0, label="To", scale=1, min_width=90)
        points = gr.Slider(2, charts.MAX_SWEEP_POINTS, value=24, step=1, precision=0,
                           label="Points", scale=2)
        spacing = gr.Radio(list(charts.SPACINGS), value="geometric", label="Spacing", scale=2)
        keep = gr.Checkbox(True, label="Keep complexity", scale=3,
                           min_width=230)
    sweep_note = gr.Markdown()
    sweep_plot = gr.Plot(show_label=False)

    gr.Markdown("### Accuracy against cost: the paper's Table 3 and torchvision's weights")
    accuracy_note = gr.Markdown()
    accuracy_plot = gr.Plot(show_label=False)

    gr.Markdown(f"### Compare pinned configs (up to {charts.MAX_PINS}, kept for this session)")
    with gr.Row(equal_height=True):
        pin_button = gr.Button("Pin current config", variant="primary", scale=1)
        to_remove = gr.Dropdown([], value=[], multiselect=True, label="Pins to remove", scale=3)
        remove_button = gr.Button("Remove", scale=1)
        clear_button = gr.Button("Clear all", scale=1)
    pin_note = gr.Markdown()
    compare_table = gr.Dataframe(headers=charts.COMPARE_COLUMNS, interactive=False, wrap=True)
    compare_plot = gr.Plot(show_label=False)

    # API-only inputs and outputs: each chart's data as JSON (no UI of its own).
    with gr.Group(visible=False):
        config_in = gr.Textbox()
        compare_out = gr.JSON()
        chart_out = gr.JSON()
        breakdown_button, sweep_button, accuracy_button, compare_button = (
            gr.Button() for _ in range(4))

    # Wiring ------------------------------------------------------------------------------
    sweep_inputs = [variable, start, stop, points, spacing, keep]
    all_inputs = [ctx.selection, scale, group_by, *sweep_inputs]
    all_outputs = [breakdown_plot, sweep_plot, sweep_note, accuracy_plot, accuracy_note]
    compare_outputs = [pins, compare_table, compare_plot, to_remove, pin_note, compare_out]
    quiet = dict(trigger_mode="always_last", show_progress="hidden")

    # Named endpoints first, so the private twins below don't take their names.
    pin_button.click(pin_current, [ctx.selection, pins], compare_outputs, api_name="pin")
    remove_button.click(unpin_selected, [pins, to_remove], compare_outputs, api_name="unpin")
    clear_button.click(clear_pins, [pins], compare_outputs, api_name="clear_pins")
    compare_button.click(compare_json, [pins], chart_out, api_name="compare_pins")
    breakdown_button.click(breakdown_json, [config_in, scale, group_by], chart_out,
                           api_name="complexity_breakdown")
    sweep_button.click(sweep_json, [config_in, *sweep_inputs], chart_out, api_name="complexity_sweep")
    accuracy_button.click(accuracy_json, [config_in], chart_out, api_name="accuracy_vs_cost")

    # The Architecture tab's controls set the Selection; every chart follows it.
    ctx.selection.change(draw_all, all_inputs, all_outputs, api_visibility="private", **quiet)
    ctx.demo.load(draw_all, all_inputs, all_outputs, api_visibility="private", **quiet)
    ctx.demo.load(show_pins, [pins], compare_outputs, api_visibility="private", **quiet)
    for control in (scale, group_by):
        control.input(draw_breakdown, [ctx.selection, scale, group_by], breakdown_plot,
                      api_visibility="private", **quiet)
    sweep_io = dict(fn=draw_sweep, inputs=[ctx.selection, *sweep_inputs],
                    outputs=[sweep_plot, sweep_note], api_visibility="private", **quiet)
    variable.input(sweep_defaults, [variable], [start, stop], api_visibility="private",
                   show_progress="hidden").success(**sweep_io)
    points.release(**sweep_io)
    for control in (spacing, keep):
        control.input(**sweep_io)
    for number in (start, stop):
        number.submit(**sweep_io)
        number.blur(**sweep_io)
