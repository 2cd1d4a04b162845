"""What the Run tab shows: result cards, the runs table (and its CSV), the batch-size sweep
chart and the preview of what a Run would use. The measuring itself is in `runner`."""

from __future__ import annotations

from typing import Any

import resnext

from ..selection import Selection
from ..shared import downloads
from ..shared import formatting as fmt
from ..shared import plots
from . import runner
from ..shared.formatting import card, cards
from ..shared.devices import resolve_device
from ..shared.models import IMAGENET, WeightsChoice
from ..shared.weights_choice import model_for

HISTORY_COLUMNS = ["#", "network", "px", "batch", "run on", "median ms", "p10–p90 ms",
                   "images/s", "GFLOP/s", "peak memory", "weights"]
# When the slowest tenth of the timed passes (p90) is this many times the fastest tenth
# (p10), something else shared the device during the run: the median may be off too.
SPREAD_WARNING_RATIO = 1.5


def network_for(weights: WeightsChoice, selection: Selection) -> Selection:
    """ImageNet weights bring their own architecture and crop (as in the Attributions tab)."""
    config, image_size, _ = model_for(weights, selection)
    return Selection(config, image_size)


def _memory_text(num_bytes: int | None) -> str:
    return "n/a" if num_bytes is None else fmt.byte_size(num_bytes)


def spread_warning(result: runner.RunResult) -> str:
    """A warning when the timed passes spread widely ('' when they agree)."""
    ratio = result.p90_ms / result.p10_ms if result.p10_ms > 0 else 1.0
    if ratio < SPREAD_WARNING_RATIO:
        return ""
    return (f"p90 is {ratio:.1f}× p10: the device was busy during the run (other programs, "
            f"throttling); rerun for steadier numbers.")


def result_html(result: runner.RunResult) -> str:
    env = result.environment
    layout = "channels-last" if result.channels_last else "contiguous (NCHW)"
    shape = "×".join(str(n) for n in result.output_shape)
    expected = "×".join(str(n) for n in result.expected_shape)
    items = [
        card("Median latency", f"{result.median_ms:,.2f} ms",
             f"per batch of {result.batch_size}; p10 {result.p10_ms:,.2f} – p90 "
             f"{result.p90_ms:,.2f} ms over {len(result.timings.seconds)} timed passes",
             warning=spread_warning(result)),
        card("Throughput", f"{result.images_per_second:,.1f} images/s",
             f"batch {result.batch_size} ÷ median latency"),
        card("Achieved compute", f"{result.gflops_per_second:,.1f} GFLOP/s",
             f"2 × {fmt.scaled(result.macs_per_image, 'MACs')} per image (conv + fc, exact)"),
        card("Peak memory", _memory_text(result.peak_memory_bytes), result.memory_note),
        card("Output shape", shape, "as expected" if result.shape_ok else f"EXPECTED {expected}"),
        card("Memory estimate", fmt.byte_size(result.estimate.estimate_bytes),
             f"weights + every layer's output; budget {fmt.byte_size(result.estimate.budget_bytes)}"),
    ]
    title = (f"{result.config.name} · {result.image_size}×{result.image_size} · batch "
             f"{result.batch_size} · {result.dtype} · {layout} · {result.warmup} warm-up passes")
    where = (f"Ran on {env.device} ({env.device_name}), {env.threads} CPU threads, torch "
             f"{env.torch_version}, Python {env.python_version}, {env.machine}. Weights: "
             f"{result.weights_label}. Input: seeded random noise (the same every run).")
    return cards(title, items, footer=where)


def history_row(number: int, result: runner.RunResult) -> list[Any]:
    layout = "channels-last" if result.channels_last else "NCHW"
    return [number, result.config.name, result.image_size, result.batch_size,
            f"{result.environment.device} · {result.dtype} · {layout}", round(result.median_ms, 2),
            f"{result.p10_ms:,.2f}–{result.p90_ms:,.2f}", round(result.images_per_second, 1),
            round(result.gflops_per_second, 1), _memory_text(result.peak_memory_bytes),
            result.weights_label]


def history_csv(rows: list[list[Any]]) -> str | None:
    """The runs table as a CSV file to download (None while it is empty)."""
    if not rows:
        return None
    return str(downloads.write_download(downloads.csv_text(HISTORY_COLUMNS, rows),
                                        "resnext-runs", ".csv"))


def batch_sweep_figure(sweep: runner.Sweep, title: str):
    """Latency (with its p10–p90 spread) above throughput, against batch size.

    Stacked rather than side by side, so the panel titles never overlap on a narrow page.
    """
    import plotly.graph_objects as go

    batches = [p.batch_size for p in sweep.points]
    fig = plots.subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                         subplot_titles=("Latency per batch (median; bars: p10–p90)",
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
        hovertemplate="batch %{x}: %{y:,.1f} images/s<extra></extra>"), row=2, col=1)
    fig.update_xaxes(type="log", tickvals=batches, ticktext=[str(b) for b in batches])
    fig.update_xaxes(title_text="batch size", row=2, col=1)
    fig.update_yaxes(title_text="ms per batch", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="images per second", rangemode="tozero", row=2, col=1)
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=560, showlegend=False,
                      margin={"l": 60, "r": 20, "t": 80, "b": 50})
    return plots.restyle(fig)


def run_preview(selection: Selection, weights: WeightsChoice, device: str, batch_size: Any,
                dtype: str) -> str:
    """Which network, weights and memory estimate a Run would use, before pressing it."""
    selection = network_for(weights, selection)
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
        lines.append(f"**Memory estimate:** {fmt.byte_size(plan.estimate_bytes)} (weights "
                     f"{fmt.byte_size(plan.weight_bytes)} + activations "
                     f"{fmt.byte_size(plan.activation_bytes)}) of a budget of "
                     f"{fmt.byte_size(plan.budget_bytes)}, {plan.budget_source}: {verdict}.")
    except ValueError as error:
        lines.append(f"**Memory estimate:** {error}")
    return "\n\n".join(lines)
