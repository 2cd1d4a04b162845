"""Architecture tab: controls for the config, headline numbers, stage table and picture,
torchinfo summary, JSON copy/paste, and the seed blog's differences."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

import resnext

from ..components import guard_inputs
from ..context import TabContext
from ..errors import user_errors
from ..selection import (
    CUSTOM,
    DEPTH_CHOICES,
    IMAGE_SIZE_RANGE,
    Selection,
    blocks_for_depth,
    check_image_size,
    default_selection,
    depth_choice,
    format_blocks,
    selection_from_controls,
)
from ..services import architecture as service

PRESET_CHOICES = [*resnext.PRESETS, CUSTOM]
# Arithmetic-only handlers (a few ms, thread-safe): many users at once, in a queue of their
# own, so they never wait behind a summary, a run or an attribution.
CHEAP = {"concurrency_id": "cheap", "concurrency_limit": 8}
_SUMMARY_DIR = Path(tempfile.gettempdir()) / "resnext-explorer-summaries"


# Handlers ------------------------------------------------------------------------------
# Each takes plain control values and returns plain values, so it is the same function for
# the browser, gradio_client and the tests.

@user_errors
def analyze(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
            block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
            keep_complexity: bool, baseline: str):
    """Numbers for the current controls: everything but the torchinfo summary."""
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity)
    cfg = selection.config
    figures = service.headline(selection, baseline)
    report = resnext.complexity(cfg, selection.image_size)
    preset = selection.preset
    return (
        selection,
        gr.update(value=preset),
        gr.update(value=cfg.bottleneck_width, interactive=not keep_complexity),
        gr.update(value=depth_choice(cfg.stage_blocks)),
        service.headline_html(selection, figures),
        service.stage_rows(report),
        service.network_figure(report),
        selection.to_json(),
        gr.update(value=service.seed_note(preset, selection.image_size),
                  visible=preset.startswith("seed_")),
    )


def controls_of(selection: Selection) -> list[Any]:
    cfg = selection.config
    return [cfg.cardinality, cfg.bottleneck_width, format_blocks(cfg.stage_blocks), cfg.stem,
            cfg.block_form, cfg.grouped_reduce, cfg.num_classes, selection.image_size]


@user_errors
def apply_preset(preset: str, image_size: float):
    """Control values for a preset ('custom' leaves them as they are)."""
    if preset == CUSTOM:
        return [gr.update()] * 9
    if preset not in resnext.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_CHOICES)}")
    native = resnext.NATIVE_IMAGE_SIZE[preset]
    return [*controls_of(Selection(resnext.PRESETS[preset], native)), False]


@user_errors
def apply_depth(depth: str, blocks_text: str, stem: str):
    """Blocks-per-stage and stem for a depth choice: 29 is the paper's CIFAR net (Sec. 5.2),
    26-200 are four-stage ImageNet nets (Table 1); 'custom' leaves both as they are."""
    blocks = blocks_for_depth(depth)
    if blocks is None:
        return blocks_text, stem
    return format_blocks(blocks), ("cifar" if int(depth) in resnext.CIFAR_DEPTHS else "imagenet")


@user_errors
def apply_json(text: str):
    """Control values from a pasted config JSON."""
    return [*controls_of(Selection.from_json(text)), False]


@user_errors
def summary(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
            block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
            keep_complexity: bool, depth: float, progress=gr.Progress()):
    """torchinfo summary of the configured model (meta device: no weights allocated)."""
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity)
    progress(0.1, desc=f"building {selection.config.name} on the meta device")
    rows, text = service.summary_rows(selection, int(depth) if depth is not None else 3)
    content = (f"{selection.config.name}, {selection.image_size}x{selection.image_size}\n"
               f"{selection.to_json()}\n{text}\n")
    return rows, str(service.write_summary_file(content, _SUMMARY_DIR))


@user_errors
def figures_json(config_json: str, image_size: float | None = None) -> dict:
    """Headline figures and per-stage rows of a config given as JSON (API endpoint /figures).

    `image_size`, when given, overrides the JSON's "image_size" (default 224).
    """
    selection = Selection.from_json(config_json)
    if image_size is not None:
        selection = Selection(selection.config, check_image_size(image_size))
    report = resnext.complexity(selection.config, selection.image_size)
    return {
        "config": selection.config.to_dict(),
        "image_size": selection.image_size,
        "preset": selection.preset,
        **service.headline(selection).as_dict(),
        "stages": [dataclasses.asdict(seg) for seg in report.segments],
    }


# Layout ----------------------------------------------------------------------------------

def build(ctx: TabContext) -> None:
    initial = default_selection()
    cfg = initial.config
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            preset = gr.Dropdown(PRESET_CHOICES, value=initial.preset, label="Preset",
                                 info="named networks of the paper, torchvision and the seed blog")
            cardinality = gr.Slider(1, 128, value=cfg.cardinality, step=1,
                                    label="Cardinality C", info="parallel paths per block")
            keep = gr.Checkbox(False, label="Keep complexity (set d from C, paper Table 2)")
            width = gr.Slider(1, 128, value=cfg.bottleneck_width, step=1,
                              label="Bottleneck width d", info="channels per path in stage 1")
            depth = gr.Radio(DEPTH_CHOICES, value=depth_choice(cfg.stage_blocks), label="Depth",
                             info="26–200: four ImageNet stages; 29: the paper's CIFAR net")
            blocks = gr.Textbox(format_blocks(cfg.stage_blocks), label="Blocks per stage",
                                info="1–6 stages of 1–64 blocks; press Enter to apply")
            with gr.Row():
                stem = gr.Radio(["imagenet", "cifar"], value=cfg.stem, label="Stem")
                form = gr.Radio(["a", "b", "c"], value=cfg.block_form, label="Block form (Fig. 3)")
            grouped = gr.Checkbox(cfg.grouped_reduce, label="Seed's grouped first 1×1 conv")
            with gr.Row():
                image_size = gr.Slider(*IMAGE_SIZE_RANGE, value=initial.image_size, step=1,
                                       label="Input resolution (pixels)")
                classes = gr.Number(cfg.num_classes, minimum=1, maximum=100_000,
                                    label="Classes")
            baseline = gr.Dropdown(list(resnext.PRESETS), value=service.DEFAULT_BASELINE,
                                   label="Compare against")
        with gr.Column(scale=3):
            glance = gr.HTML(label="At a glance")
            seed_note = gr.Markdown(visible=False)
            with gr.Row(equal_height=False):
                stages = gr.Dataframe(headers=service.STAGE_COLUMNS, label="Stages",
                                      interactive=False, wrap=True, scale=3)
            picture = gr.Plot(label="Shape of the network")
            with gr.Accordion("torchinfo summary", open=False):
                gr.Markdown("torchinfo's *Mult-Adds* also counts BatchNorm (one per parameter) "
                            "and the fc bias, so it reads slightly above the headline MACs.")
                with gr.Row():
                    summary_depth = gr.Slider(1, 4, value=3, step=1,
                                              label="Summary depth")
                    summary_file = gr.File(label="Download the summary as text",
                                           interactive=False)
                summary_table = gr.Dataframe(headers=service.SUMMARY_COLUMNS, interactive=False,
                                             max_height=520)
            with gr.Accordion("Config as JSON (copy, or paste one to restore it)", open=False):
                config_json = gr.Code(language="json", label="Current config", interactive=False)
                pasted = gr.Textbox(label="Paste a config JSON", lines=4)
                load_json = gr.Button("Load pasted config")
    # API-only: the figures of a config JSON as one JSON object (no UI of its own).
    with gr.Group(visible=False):
        config_json_in = gr.Textbox()
        image_size_in = gr.Number()
        figures_button = gr.Button()
        figures_out = gr.JSON()

    control_inputs = [cardinality, width, blocks, stem, form, grouped, classes, image_size, keep]
    guard_inputs([*control_inputs, preset, depth, baseline, summary_depth, image_size_in])
    analyze_outputs = [ctx.selection, preset, width, depth, glance, stages, picture, config_json,
                       seed_note]
    settable = [cardinality, width, blocks, stem, form, grouped, classes, image_size, keep]
    summary_io = dict(inputs=[*control_inputs, summary_depth], outputs=[summary_table, summary_file],
                      concurrency_id="summary", concurrency_limit=2, trigger_mode="always_last",
                      show_progress="minimal")

    def then_summary(event) -> None:
        # The summary builds a (meta) model: its own small queue, after the numbers are shown.
        event.success(summary, api_visibility="private", **summary_io)

    def analyze_on(listener, api_name: str | None = None) -> None:
        visibility = {"api_name": api_name} if api_name else {"api_visibility": "private"}
        then_summary(listener(analyze, [*control_inputs, baseline], analyze_outputs,
                              trigger_mode="always_last", show_progress="hidden",
                              **CHEAP, **visibility))

    def set_controls_then_analyze(event) -> None:
        then_summary(event.success(analyze, [*control_inputs, baseline], analyze_outputs,
                                   api_visibility="private", show_progress="hidden", **CHEAP))

    # One named endpoint per action (README: "HTTP API"); the other triggers are private twins,
    # registered after the named ones so those keep their names.
    summary_depth.release(summary, api_name="summary", **summary_io)
    analyze_on(cardinality.input, api_name="analyze")
    figures_button.click(figures_json, [config_json_in, image_size_in], figures_out,
                         api_name="figures", **CHEAP)
    for control in (width, image_size, stem, form, grouped, keep, baseline):
        analyze_on(control.input)
    analyze_on(classes.submit)
    analyze_on(classes.blur)
    analyze_on(blocks.submit)
    set_controls_then_analyze(depth.input(apply_depth, [depth, blocks, stem], [blocks, stem],
                                          api_name="apply_depth", show_progress="hidden"))
    set_controls_then_analyze(preset.input(apply_preset, [preset, image_size], settable,
                                           api_name="apply_preset", show_progress="hidden"))
    set_controls_then_analyze(load_json.click(apply_json, [pasted], settable, api_name="apply_json"))
    # First paint when the page opens.
    analyze_on(ctx.demo.load)
