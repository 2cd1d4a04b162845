"""Run tab: time forward passes of the selected network on a device, sweep batch sizes, and
keep results side by side. Layout and wiring only: the measuring is in `runner`, what
is shown of it in `views`."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..selection import Selection, check_image_size
from . import views
from . import runner
from ..shared.devices import DeviceInfo, device_choices, initial_choices, resolve_device
from ..shared.models import WeightsChoice

# Every forward pass, from the page or the API, waits in this one queue: two runs at once
# would compete for the same cores or GPU and both timings would be wrong.
FORWARD_QUEUE = {"concurrency_id": "forward", "concurrency_limit": 1}
SWEEP_MAX_CHOICES = [b for b in runner.SWEEP_BATCHES if b >= 2]
INTRO_HTML = ('<div class="rx-note">Press <b>Run</b> to time forward passes of this network. '
              'Runs from every user wait in one queue, so timings are not shared with '
              'another run.</div>')


# Handlers ---------------------------------------------------------------------------------

def _weights(weights: WeightsChoice | None) -> WeightsChoice:
    return weights if isinstance(weights, WeightsChoice) else WeightsChoice()


def _reporter(progress: Any) -> runner.Progress:
    return lambda fraction, label: progress(fraction, desc=label)


@keep_state
def device_options(device: str, dtype: str):
    """dtype choices and explanations for a device (options that don't apply are not offered)."""
    info = resolve_device(device)
    choices = runner.dtype_choices(info)
    return gr.update(choices=choices, value=dtype if dtype in choices else "float32",
                     info=runner.dtype_note(info))


@keep_state
def preview(selection: Selection, weights: WeightsChoice | None, device: str,
            batch_size: float, dtype: str) -> str:
    return views.run_preview(selection, _weights(weights), device, batch_size, dtype)


@keep_state
def run_selected(selection: Selection, weights: WeightsChoice | None, device: str,
                 batch_size: float, dtype: str, channels_last: bool, warmup: float,
                 iterations: float, history: list, progress=gr.Progress()) -> dict[str, Any]:
    """The Run button: measure, show the result, and add it to this user's table."""
    weights = _weights(weights)
    selection = views.network_for(weights, selection)
    request = runner.make_request(selection.config, selection.image_size, device, batch_size,
                                  dtype, bool(channels_last), warmup, iterations, weights)
    result = runner.run(request, _reporter(progress))
    rows = [*(history or []), views.history_row(len(history or []) + 1, result)]
    if result.top5 is not None:
        top5 = gr.update(value={name: p for name, p in result.top5}, visible=True,
                         label=f"Top-5 of image 1 of the batch ({result.weights_label})")
    else:
        top5 = gr.update(value=None, visible=False)
    return {"result": views.result_html(result), "top5": top5, "history": rows, "table": rows,
            "csv": gr.update(value=views.history_csv(rows), visible=True)}


@keep_state
def sweep_selected(selection: Selection, weights: WeightsChoice | None, device: str, dtype: str,
                   channels_last: bool, iterations: float, max_batch: float,
                   progress=gr.Progress()) -> dict[str, Any]:
    """The sweep button: latency and throughput for batch 1, 2, 4, ... up to `max_batch`."""
    selection = views.network_for(_weights(weights), selection)
    request = runner.make_request(selection.config, selection.image_size, device, 1, dtype,
                                  bool(channels_last), 1, iterations, _weights(weights))
    sweep = runner.sweep(request, max_batch, _reporter(progress))
    layout = "channels-last" if request.channels_last else "NCHW"
    title = (f"{selection.config.name}, {selection.image_size}×{selection.image_size}, "
             f"{request.device.key}, {request.dtype}, {layout}, {request.iterations} timed passes "
             f"per point")
    note = "\n".join(f"- Not run: {html.escape(s)}" for s in sweep.skipped)
    return {"sweep_plot": gr.update(value=views.batch_sweep_figure(sweep, title), visible=True),
            "sweep_note": gr.update(value=note, visible=bool(note))}


def _request_from_api(config_json: str, image_size: Any, device: str, batch_size: Any,
                      dtype: str, channels_last: Any, warmup: Any, iterations: Any,
                      weights: str | None) -> runner.RunRequest:
    selection = Selection.from_json(config_json)
    if image_size is not None:
        selection = Selection(selection.config, check_image_size(image_size))
    return runner.make_request(selection.config, selection.image_size, device, batch_size,
                               dtype or "float32", bool(channels_last),
                               runner.WARMUP_DEFAULT if warmup is None else warmup,
                               runner.ITERATIONS_DEFAULT if iterations is None else iterations,
                               runner.weights_from_name(weights))


@user_errors
def run_api(config_json: str, image_size: float | None, device: str, batch_size: float,
            dtype: str, channels_last: bool, warmup: float | None, iterations: float | None,
            weights: str | None, progress=gr.Progress()) -> dict:
    """API endpoint /run: one measurement of a config given as JSON; the result as JSON."""
    request = _request_from_api(config_json, image_size, device, batch_size, dtype,
                                channels_last, warmup, iterations, weights)
    return runner.run(request, _reporter(progress)).as_dict()


@user_errors
def sweep_api(config_json: str, image_size: float | None, device: str, dtype: str,
              channels_last: bool, iterations: float | None, max_batch: float,
              weights: str | None, progress=gr.Progress()) -> dict:
    """API endpoint /sweep: latency and throughput per batch size, as JSON."""
    iterations = runner.SWEEP_ITERATIONS_DEFAULT if iterations is None else iterations
    request = _request_from_api(config_json, image_size, device, 1, dtype, channels_last, 1,
                                iterations, weights)
    return runner.sweep(request, max_batch, _reporter(progress)).as_dict()


def clear_history() -> dict[str, Any]:
    return {"history": [], "table": [], "csv": gr.update(value=None, visible=False)}


# Layout -----------------------------------------------------------------------------------

class Settings:
    def __init__(self, device_key: str) -> None:
        # The CPU's dtypes until the page loads and the device list is read (torch stays
        # unimported until then, so the server starts as fast as Gradio itself).
        cpu = DeviceInfo("cpu", "CPU", "cpu")
        self.device = ui.Dropdown(initial_choices(device_key), value=device_key,
                                  label="Device", info="devices this machine has")
        low, high = runner.BATCH_RANGE
        self.batch = ui.Number(1, minimum=low, maximum=high, label="Batch size",
                               info=f"{low}–{high} images per pass")
        self.dtype = ui.Radio(runner.dtype_choices(cpu), value="float32", label="dtype",
                              info=runner.dtype_note(cpu))
        self.channels_last = gr.Checkbox(False, label="Channels-last memory format",
                                         info="NHWC weights and input; often faster for convs")
        with gr.Row():
            self.warmup = ui.Slider(*runner.WARMUP_RANGE, value=runner.WARMUP_DEFAULT, step=1,
                                    precision=0, label="Warm-up passes", info="run first, not timed")
            self.iterations = ui.Slider(*runner.ITERATIONS_RANGE, value=runner.ITERATIONS_DEFAULT,
                                        step=1, precision=0, label="Timed passes",
                                        info="median and p10/p90 of these")
        self.run_button = gr.Button("Run", variant="primary")
        with gr.Group():
            self.max_batch = ui.Dropdown(SWEEP_MAX_CHOICES, value=runner.SWEEP_MAX_DEFAULT,
                                         label="Sweep up to batch",
                                         info="batch 1, 2, 4, … up to this; each point is a full run")
            self.sweep_button = gr.Button("Sweep batch sizes")


class Results:
    def __init__(self) -> None:
        self.preview = gr.Markdown()
        self.result = gr.HTML(INTRO_HTML, elem_id="run-results", label="Result")
        self.top5 = gr.Label(num_top_classes=5, visible=False)
        self.sweep_plot = gr.Plot(label="Batch-size sweep", visible=False, elem_id="run-sweep")
        self.sweep_note = gr.Markdown(visible=False)
        with gr.Row():
            gr.Markdown("**Your runs** (this browser session only)")
            self.csv = gr.DownloadButton("Download (CSV)", value=None, size="sm", scale=0,
                                         min_width=150, visible=False)
            self.clear_button = gr.Button("Clear table", size="sm", scale=0, min_width=110)
        self.history = gr.State([])
        # Widths as shares of the panel, so all eleven columns fit a laptop screen; cells
        # wrap between words (headers never inside one: theme.py).
        self.table = gr.Dataframe(headers=views.HISTORY_COLUMNS, interactive=False, wrap=True,
                                  elem_id="run-table", elem_classes=["rx-table"],
                                  column_widths=["4%", "13%", "5%", "7%", "12%", "9%", "12%",
                                                 "10%", "9%", "10%", "9%"])

    @property
    def run_outputs(self) -> dict[str, Any]:
        """What a run fills, by name (clearing the table empties the last three)."""
        return {"result": self.result, "top5": self.top5, "history": self.history,
                "table": self.table, "csv": self.csv}


def build(ctx: TabContext) -> None:
    with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
        with gr.Column(scale=1, min_width=300):
            settings = Settings(ctx.options.default_device)
        with gr.Column(scale=3, min_width=480):
            results = Results()
    _wire(ctx, settings, results)


# Wiring -----------------------------------------------------------------------------------

def _wire(ctx: TabContext, s: Settings, r: Results) -> None:
    _api_endpoints()
    shown = dict(api_visibility="private", show_progress="full", show_progress_on=r.result,
                 **FORWARD_QUEUE)
    s.run_button.click(**ui.by_name(run_selected, r.run_outputs),
                       inputs=[ctx.selection, ctx.weights, s.device, s.batch, s.dtype,
                               s.channels_last, s.warmup, s.iterations, r.history], **shown)
    s.sweep_button.click(**ui.by_name(sweep_selected, {"sweep_plot": r.sweep_plot,
                                                       "sweep_note": r.sweep_note}),
                         inputs=[ctx.selection, ctx.weights, s.device, s.dtype, s.channels_last,
                                 s.iterations, s.max_batch], **shown)
    r.clear_button.click(**ui.by_name(clear_history, r.run_outputs), inputs=None,
                         api_visibility="private", queue=False)
    s.device.change(device_options, [s.device, s.dtype], s.dtype, api_visibility="private",
                    show_progress="hidden")
    ctx.follow_shared_device(s.device)
    ctx.demo.load(lambda: gr.update(choices=device_choices()), None, s.device,
                  api_visibility="private", show_progress="hidden")
    preview_inputs = [ctx.selection, ctx.weights, s.device, s.batch, s.dtype]
    for trigger in (ctx.demo.load, ctx.selection.change, ctx.weights.change, s.device.change,
                    s.batch.change, s.dtype.change):
        trigger(preview, preview_inputs, r.preview, api_visibility="private",
                show_progress="hidden", trigger_mode="always_last")


def _api_endpoints() -> None:
    """Named endpoints /run and /sweep: a config as JSON and plain values, so a script needs
    no browser state. No bounds on these hidden inputs: the service checks every value.

    They hold no session state, yet stay events on hidden inputs rather than `gr.api`: a run
    takes seconds to minutes and reports its progress to the caller (gradio_client's
    `job.status()`), which needs `gr.Progress`, and gr.api cannot take it (`ui.api`)."""
    with gr.Group(visible=False):
        config = gr.Textbox()
        image_size = gr.Number()
        device = gr.Textbox()
        batch = gr.Number()
        dtype = gr.Textbox()
        channels_last = gr.Checkbox()
        warmup = gr.Number()
        iterations = gr.Number()
        max_batch = gr.Number()
        weights = gr.Textbox()
        run_button = gr.Button()
        sweep_button = gr.Button()
        out = gr.JSON()
    run_button.click(run_api, [config, image_size, device, batch, dtype, channels_last, warmup,
                               iterations, weights], out, api_name="run", **FORWARD_QUEUE)
    sweep_button.click(sweep_api, [config, image_size, device, dtype, channels_last, iterations,
                                   max_batch, weights], out, api_name="sweep", **FORWARD_QUEUE)
