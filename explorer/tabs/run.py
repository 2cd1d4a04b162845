"""Run tab: time forward passes of the selected network on a device, sweep batch sizes, and
keep results side by side. The measuring is in explorer.services.runner."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

import resnext

from ..context import TabContext
from ..errors import user_errors
from ..selection import Selection, check_image_size
from ..services import formatting as fmt
from ..services import plots, runner
from ..services.devices import DeviceInfo, device_choices, initial_choices, resolve_device
from .shared import follow_shared_device
from ..services.models import IMAGENET, WeightsChoice
from ..services.weights_choice import model_for

# Every forward pass, from the page or the API, waits in this one queue: two runs at once
# would compete for the same cores or GPU and both timings would be wrong.
FORWARD_QUEUE = {"concurrency_id": "forward", "concurrency_limit": 1}
HISTORY_COLUMNS = ["#", "network", "px", "batch", "run on", "median ms", "p10–p90 ms",
                   "images/s", "GFLOP/s", "peak memory", "weights"]
SWEEP_MAX_CHOICES = [b for b in runner.SWEEP_BATCHES if b >= 2]


# Formatting -------------------------------------------------------------------------------

def _card(label: str, value: str, note: str) -> str:
    return (f'<div class="rx-card"><div class="rx-label">{html.escape(label)}</div>'
            f'<div class="rx-value">{html.escape(value)}</div>'
            f'<div class="rx-note">{html.escape(note)}</div></div>')


def _memory_text(num_bytes: int | None) -> str:
    return "n/a" if num_bytes is None else fmt.megabytes(num_bytes)


def result_html(result: runner.RunResult) -> str:
    env = result.environment
    layout = "channels-last" if result.channels_last else "contiguous (NCHW)"
    shape = "×".join(str(n) for n in result.output_shape)
    expected = "×".join(str(n) for n in result.expected_shape)
    cards = [
        _card("Median latency", f"{result.median_ms:,.2f} ms",
              f"per batch of {result.batch_size}; p10 {result.p10_ms:,.2f} – p90 "
              f"{result.p90_ms:,.2f} ms over {len(result.timings.seconds)} timed passes"),
        _card("Throughput", f"{result.images_per_second:,.1f} images/s",
              f"batch {result.batch_size} ÷ median latency"),
        _card("Achieved compute", f"{result.gflops_per_second:,.1f} GFLOP/s",
              f"2 × {fmt.scaled(result.macs_per_image, 'MACs')} per image (conv + fc, exact)"),
        _card("Peak memory", _memory_text(result.peak_memory_bytes), result.memory_note),
        _card("Output shape", shape,
              "as expected" if result.shape_ok else f"EXPECTED {expected}"),
        _card("Memory estimate", fmt.megabytes(result.estimate.estimate_bytes),
              f"weights + every layer's output; budget {fmt.megabytes(result.estimate.budget_bytes)}"),
    ]
    title = (f"{result.config.name} · {result.image_size}×{result.image_size} · batch "
             f"{result.batch_size} · {result.dtype} · {layout} · {result.warmup} warm-up passes")
    where = (f"Ran on {env.device} ({env.device_name}), {env.threads} CPU threads, torch "
             f"{env.torch_version}, Python {env.python_version}, {env.machine}. Weights: "
             f"{result.weights_label}. Input: seeded random noise (the same every run).")
    return (f'<div class="rx-title">{html.escape(title)}</div>'
            f'<div class="rx-cards">{"".join(cards)}</div>'
            f'<div class="rx-note" style="margin-top:0.5rem">{html.escape(where)}</div>')


def history_row(number: int, result: runner.RunResult) -> list[Any]:
    layout = "channels-last" if result.channels_last else "NCHW"
    return [number, result.config.name, result.image_size, result.batch_size,
            f"{result.environment.device} · {result.dtype} · {layout}", round(result.median_ms, 2),
            f"{result.p10_ms:,.2f}–{result.p90_ms:,.2f}", round(result.images_per_second, 1),
            round(result.gflops_per_second, 1), _memory_text(result.peak_memory_bytes),
            result.weights_label]


def sweep_figure(sweep: runner.Sweep, title: str):
    """Latency (with its p10–p90 spread) and throughput against batch size."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    batches = [p.batch_size for p in sweep.points]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Latency per batch (median, bars: p10–p90)",
                                        "Throughput"))
    fig.add_trace(go.Scatter(
        x=batches, y=[p.median_ms for p in sweep.points], mode="lines+markers",
        name="median latency",
        error_y={"type": "data", "symmetric": False,
                 "array": [p.p90_ms - p.median_ms for p in sweep.points],
                 "arrayminus": [p.median_ms - p.p10_ms for p in sweep.points]},
        hovertemplate="batch %{x}: %{y:,.2f} ms<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=batches, y=[p.images_per_second for p in sweep.points], mode="lines+markers",
        name="images/s", marker_color="#2ca02c",
        hovertemplate="batch %{x}: %{y:,.1f} images/s<extra></extra>"), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="batch size", type="log", tickvals=batches,
                         ticktext=[str(b) for b in batches], row=1, col=col)
    fig.update_yaxes(title_text="ms per batch", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="images per second", rangemode="tozero", row=1, col=2)
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=380, showlegend=False,
                      margin={"l": 60, "r": 20, "t": 70, "b": 50})
    return plots.restyle(fig)


# Handlers ---------------------------------------------------------------------------------

def _weights(weights: WeightsChoice | None) -> WeightsChoice:
    return weights if isinstance(weights, WeightsChoice) else WeightsChoice()


def _network_for(weights: WeightsChoice, selection: Selection) -> Selection:
    """ImageNet weights bring their own architecture and crop (as in the Attributions tab)."""
    config, image_size, _ = model_for(weights, selection)
    return Selection(config, image_size)


def _reporter(progress: Any) -> runner.Progress:
    return lambda fraction, label: progress(fraction, desc=label)


@user_errors
def device_options(device: str, dtype: str):
    """dtype choices and explanations for a device (options that don't apply are not offered)."""
    info = resolve_device(device)
    choices = runner.dtype_choices(info)
    return gr.update(choices=choices, value=dtype if dtype in choices else "float32",
                     info=runner.dtype_note(info))


@user_errors
def model_summary(selection: Selection, weights: WeightsChoice | None, device: str,
                  batch_size: float, dtype: str) -> str:
    """Which network, weights and memory estimate a Run would use, before pressing it."""
    weights = _weights(weights)
    selection = _network_for(weights, selection)
    cfg = selection.config
    preset = resnext.preset_name(cfg)
    source = ("the architecture of these ImageNet weights" if weights.kind == IMAGENET
              else "set in the Architecture tab")
    lines = [f"**Network:** {cfg.name}{f' ({preset})' if preset else ''} at "
             f"{selection.image_size}×{selection.image_size}, {cfg.num_classes} classes — "
             f"{source}.",
             f"**Weights:** {weights.label} — chosen in the Attributions tab."]
    try:
        info = resolve_device(device)
        request = runner.make_request(cfg, selection.image_size, info.key, batch_size,
                                      dtype if dtype in runner.dtype_choices(info) else "float32")
        plan = runner.memory_plan(cfg, selection.image_size, request.batch_size, request.dtype,
                                  info)
        verdict = "fits" if plan.fits else "**over budget: Run will refuse it**"
        lines.append(f"**Memory estimate:** {fmt.megabytes(plan.estimate_bytes)} (weights "
                     f"{fmt.megabytes(plan.weight_bytes)} + activations "
                     f"{fmt.megabytes(plan.activation_bytes)}) of a budget of "
                     f"{fmt.megabytes(plan.budget_bytes)}, {plan.budget_source}: {verdict}.")
    except ValueError as error:
        lines.append(f"**Memory estimate:** {error}")
    return "\n\n".join(lines)


@user_errors
def run_selected(selection: Selection, weights: WeightsChoice | None, device: str,
                 batch_size: float, dtype: str, channels_last: bool, warmup: float,
                 iterations: float, history: list, progress=gr.Progress()):
    """The Run button: measure, show the result, and add it to this user's table."""
    weights = _weights(weights)
    selection = _network_for(weights, selection)
    request = runner.make_request(selection.config, selection.image_size, device, batch_size,
                                  dtype, bool(channels_last), warmup, iterations, weights)
    result = runner.run(request, _reporter(progress))
    rows = [*(history or []), history_row(len(history or []) + 1, result)]
    if result.top5 is not None:
        top5 = gr.update(value={name: p for name, p in result.top5}, visible=True,
                         label=f"Top-5 of image 1 of the batch ({result.weights_label})")
    else:
        top5 = gr.update(value=None, visible=False)
    return result_html(result), top5, rows, rows


def _request_from_api(config_json: str, image_size: Any, device: str, batch_size: Any,
                      dtype: str, channels_last: Any, warmup: Any, iterations: Any,
                      weights: str | None) -> runner.RunRequest:
    selection = Selection.from_json(config_json)
    if image_size is not None:
        selection = Selection(selection.config, check_image_size(image_size))
    return runner.make_request(selection.config, selection.image_size, device, batch_size,
                               dtype or "float32", bool(channels_last),
                               3 if warmup is None else warmup,
                               10 if iterations is None else iterations,
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
def sweep_selected(selection: Selection, weights: WeightsChoice | None, device: str, dtype: str,
                   channels_last: bool, iterations: float, max_batch: float,
                   progress=gr.Progress()):
    """The sweep button: latency and throughput for batch 1, 2, 4, ... up to `max_batch`."""
    selection = _network_for(_weights(weights), selection)
    request = runner.make_request(selection.config, selection.image_size, device, 1, dtype,
                                  bool(channels_last), 1, iterations, _weights(weights))
    sweep = runner.sweep(request, max_batch, _reporter(progress))
    layout = "channels-last" if request.channels_last else "NCHW"
    title = (f"{selection.config.name}, {selection.image_size}×{selection.image_size}, "
             f"{request.device.key}, {request.dtype}, {layout}, {request.iterations} timed passes "
             f"per point")
    note = "\n".join(f"- Not run: {html.escape(s)}" for s in sweep.skipped)
    return (gr.update(value=sweep_figure(sweep, title), visible=True),
            gr.update(value=note, visible=bool(note)))


@user_errors
def sweep_api(config_json: str, image_size: float | None, device: str, dtype: str,
              channels_last: bool, iterations: float | None, max_batch: float,
              weights: str | None, progress=gr.Progress()) -> dict:
    """API endpoint /sweep: latency and throughput per batch size, as JSON."""
    request = _request_from_api(config_json, image_size, device, 1, dtype, channels_last, 1,
                                5 if iterations is None else iterations, weights)
    return runner.sweep(request, max_batch, _reporter(progress)).as_dict()


def clear_history():
    return [], []


# Layout -----------------------------------------------------------------------------------

def build(ctx: TabContext) -> None:
    device_key = ctx.options.default_device
    # The CPU's dtypes until the page loads and the device list is read (torch stays unimported
    # until then, so the server starts as fast as Gradio itself); a GPU default refines them.
    cpu = DeviceInfo("cpu", "CPU", "cpu")
    initial_dtypes = runner.dtype_choices(cpu)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            device = gr.Dropdown(initial_choices(device_key), value=device_key,
                                 label="Device", info="devices this machine has")
            batch = gr.Number(1, minimum=runner.BATCH_RANGE[0], maximum=runner.BATCH_RANGE[1],
                              precision=0, label="Batch size",
                              info=f"{runner.BATCH_RANGE[0]}–{runner.BATCH_RANGE[1]} images per pass")
            dtype = gr.Radio(initial_dtypes, value="float32", label="dtype",
                             info=runner.dtype_note(cpu))
            channels_last = gr.Checkbox(False, label="Channels-last memory format",
                                        info="NHWC weights and input; often faster for convs")
            with gr.Row():
                warmup = gr.Slider(*runner.WARMUP_RANGE, value=3, step=1, precision=0,
                                   label="Warm-up passes", info="run first, not timed")
                iterations = gr.Slider(*runner.ITERATIONS_RANGE, value=10, step=1, precision=0,
                                       label="Timed passes", info="median and p10/p90 of these")
            run_button = gr.Button("Run", variant="primary")
            with gr.Group():
                max_batch = gr.Dropdown(SWEEP_MAX_CHOICES, value=16, label="Sweep up to batch",
                                        info="batch 1, 2, 4, … up to this; each point is a full run")
                sweep_button = gr.Button("Sweep batch sizes")
        with gr.Column(scale=3):
            summary = gr.Markdown()
            results = gr.HTML(elem_id="run-results", value=
                '<div class="rx-note">Press <b>Run</b> to time forward passes of this network. '
                'Runs from every user wait in one queue, so timings are not shared with '
                'another run.</div>', label="Result")
            top5 = gr.Label(num_top_classes=5, visible=False)
            sweep_plot = gr.Plot(label="Batch-size sweep", visible=False, elem_id="run-sweep")
            sweep_note = gr.Markdown(visible=False)
            with gr.Row():
                gr.Markdown("**Your runs** (this browser session only)")
                clear_button = gr.Button("Clear table", size="sm", scale=0, min_width=110)
            # Widths as shares of the panel, so all eleven columns fit a laptop screen.
            table = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True,
                                 elem_id="run-table",
                                 column_widths=["4%", "15%", "5%", "6%", "16%", "8%", "12%",
                                                "8%", "8%", "9%", "9%"])
    history = gr.State([])
    # API-only inputs: a config as JSON and plain values, so a script needs no browser state.
    # No bounds here: the service checks every value and says what is wrong.
    with gr.Group(visible=False):
        api_config = gr.Textbox()
        api_image_size = gr.Number()
        api_device = gr.Textbox()
        api_batch = gr.Number()
        api_dtype = gr.Textbox()
        api_channels_last = gr.Checkbox()
        api_warmup = gr.Number()
        api_iterations = gr.Number()
        api_max_batch = gr.Number()
        api_weights = gr.Textbox()
        api_run_button = gr.Button()
        api_sweep_button = gr.Button()
        api_out = gr.JSON()

    # Named API endpoints first (README: "HTTP API"), then the page's private twins.
    api_run_button.click(run_api, [api_config, api_image_size, api_device, api_batch, api_dtype,
                                   api_channels_last, api_warmup, api_iterations, api_weights],
                         api_out, api_name="run", **FORWARD_QUEUE)
    api_sweep_button.click(sweep_api, [api_config, api_image_size, api_device, api_dtype,
                                       api_channels_last, api_iterations, api_max_batch,
                                       api_weights], api_out, api_name="sweep", **FORWARD_QUEUE)
    run_button.click(run_selected,
                     [ctx.selection, ctx.weights, device, batch, dtype, channels_last, warmup,
                      iterations, history], [results, top5, history, table],
                     api_visibility="private", show_progress="full", show_progress_on=results,
                     **FORWARD_QUEUE)
    sweep_button.click(sweep_selected,
                       [ctx.selection, ctx.weights, device, dtype, channels_last, iterations,
                        max_batch], [sweep_plot, sweep_note],
                       api_visibility="private", show_progress="full", show_progress_on=results,
                       **FORWARD_QUEUE)
    clear_button.click(clear_history, None, [history, table], api_visibility="private",
                       queue=False)
    device.change(device_options, [device, dtype], dtype, api_visibility="private",
                  show_progress="hidden")
    follow_shared_device(ctx, device)
    ctx.demo.load(lambda: gr.update(choices=device_choices()), None, device,
                  api_visibility="private", show_progress="hidden")
    summary_inputs = [ctx.selection, ctx.weights, device, batch, dtype]
    for trigger in (ctx.demo.load, ctx.selection.change, ctx.weights.change, device.change,
                    batch.change, dtype.change):
        trigger(model_summary, summary_inputs, summary, api_visibility="private",
                show_progress="hidden", trigger_mode="always_last")
