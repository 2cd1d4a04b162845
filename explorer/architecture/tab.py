"""Architecture tab: controls for the config, headline numbers, stage table and picture,
torchinfo summary, JSON copy/paste, a link to this network, and the seed blog's differences.

Layout and wiring only: controls -> `Selection` (explorer.selection) -> `view`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

import resnext

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors
from ..selection import (BASE_PLANES_RANGE, BOTTLENECK_WIDTH_RANGE, CARDINALITY_RANGE, CUSTOM,
                         DEPTH_CHOICES, IMAGE_SIZE_RANGE, NUM_CLASSES_RANGE, STAGES_RANGE,
                         BLOCKS_PER_STAGE_RANGE, Selection, check_image_size,
                         default_selection, depth_choice, format_blocks,
                         selection_from_controls)
from . import view as service
from ..shared import downloads

PRESET_CHOICES = [*resnext.PRESETS, CUSTOM]
# Arithmetic-only handlers (a few ms, thread-safe): many users at once, in a queue of their
# own, so they never wait behind a summary, a run or an attribution.
CHEAP = {"concurrency_id": "cheap", "concurrency_limit": 8}
SUMMARY_QUEUE = {"concurrency_id": "summary", "concurrency_limit": 2}


# Handlers ------------------------------------------------------------------------------
# The API handlers take plain control values (the same function for gradio_client and the
# tests); the page's twins also receive the Selection in use, to put controls back to it
# when a value is refused.

def controls_of(selection: Selection, keep_complexity: bool = False) -> list[Any]:
    """The values of the settable controls, in `Controls.settable` order."""
    cfg = selection.config
    return [cfg.cardinality, cfg.bottleneck_width, format_blocks(cfg.stage_blocks), cfg.stem,
            cfg.block_form, cfg.grouped_reduce, cfg.num_classes, selection.image_size,
            keep_complexity, cfg.base_planes]


def _view_outputs(view: service.ArchitectureView, keep_complexity: bool) -> list[Any]:
    selection = view.selection
    return [
        gr.update(value=selection.preset),
        gr.update(value=selection.config.bottleneck_width, interactive=not keep_complexity),
        gr.update(value=depth_choice(selection.config.stage_blocks)),
        view.headline_html,
        view.stage_rows,
        view.figure,
        view.config_json,
        gr.update(value=view.seed_note, visible=bool(view.seed_note)),
    ]


@user_errors
def analyze(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
            block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
            keep_complexity: bool, baseline: str, base_planes: float = 64):
    """API /analyze: the numbers for control values (everything but the torchinfo summary).

    Returns preset, d, depth, headline HTML, stage table, figure, JSON, seed note.
    """
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity, base_planes)
    return [selection, *_view_outputs(service.view(selection, baseline), keep_complexity)]


def _controls_back(*args: Any) -> list[Any]:
    """After a refused value: every control shows the Selection in use again."""
    selection, keep = args[-1], args[8]
    return [gr.skip(), *controls_of(selection, keep), gr.skip(),
            gr.update(value=depth_choice(selection.config.stage_blocks)), *[gr.skip()] * 6]


@keep_state(restore=_controls_back)
def analyze_page(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
                 block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
                 keep_complexity: bool, baseline: str, base_planes: float, in_use: Selection):
    """The page: as /analyze, and every control shows the value in use (blocks normalised,
    d from C under keep complexity), plus the link to this network.

    Only a control whose value the handler changed is written: one the person edits while
    this answer is on its way keeps their new value (and the event for it, which Gradio runs
    next, reads that value)."""
    sent = [cardinality, bottleneck_width, blocks_text, stem, block_form, grouped_reduce,
            num_classes, image_size, keep_complexity, base_planes]
    selection = selection_from_controls(*sent)
    view = service.view(selection, baseline)
    preset, _, depth, *shown = _view_outputs(view, keep_complexity)
    controls = [gr.skip() if _same_value(before, after) else after
                for before, after in zip(sent, controls_of(selection, keep_complexity))]
    width = selection.config.bottleneck_width  # d's box also locks under keep complexity
    controls[1] = gr.update(interactive=not keep_complexity,
                            **({} if _same_value(bottleneck_width, width) else {"value": width}))
    return [selection, *controls, preset, depth, *shown, _link_markdown(view.link)]


def _same_value(sent: Any, shown: Any) -> bool:
    """Whether a control already shows `shown` (numbers compare as numbers: 32.0 is 32)."""
    if isinstance(sent, (int, float)) and not isinstance(sent, bool) and isinstance(
            shown, (int, float)) and not isinstance(shown, bool):
        return float(sent) == float(shown)
    return sent == shown


def _link_markdown(query: str) -> str:
    return (f"[Link to this network]({query}) — open it (or share it) to get this same network "
            f"on screen.")


@user_errors
def apply_preset(preset: str):
    """API /apply_preset: the control values of a preset ('custom' leaves them as they are)."""
    if preset == CUSTOM:
        return gr.skip()
    return controls_of(service.preset_selection(preset))


@user_errors
def apply_depth(depth: str, blocks_text: str, stem: str, image_size: float = 224,
                num_classes: float = 1000):
    """API /apply_depth: blocks per stage, stem, input side and classes for a depth choice.

    29 is the paper's CIFAR net (Sec. 5.2): choosing it from an ImageNet setting brings the
    CIFAR stem, 32 px and 10 classes; 26-200 (Table 1) bring the ImageNet ones back.
    """
    if depth == CUSTOM:
        return blocks_text, stem, image_size, num_classes
    setting = service.depth_setting(depth, stem, check_image_size(image_size), num_classes)
    if setting.note:
        gr.Info(setting.note)
    return format_blocks(setting.stage_blocks), setting.stem, setting.image_size, setting.num_classes


@user_errors
def apply_json(text: str):
    """API /apply_json: the control values of a pasted config JSON."""
    return controls_of(Selection.from_json(text))


def apply_requested(selection: Selection | None):
    """Another tab chose a network (a trained run, a smaller variant): show it here."""
    return gr.skip() if selection is None else controls_of(selection)


def apply_link(request: gr.Request):
    """On page load: a '?config=' link puts its network on the controls."""
    try:
        selection = Selection.from_link(dict(request.query_params) if request else {})
    except ValueError as error:
        gr.Warning(f"The link's config was not applied: {error}")
        return gr.skip()
    if selection is None:
        return gr.skip()
    return controls_of(selection)


def _summary(selection: Selection, summary_depth: Any, progress: Any) -> tuple[list, str]:
    progress(0.1, desc=f"building {selection.config.name} on the meta device")
    rows, text = service.summary_rows(selection, summary_depth)
    content = (f"{selection.config.name}, {selection.image_size}x{selection.image_size}\n"
               f"{selection.to_json()}\n{text}\n")
    return rows, str(downloads.write_download(content, "resnext-summary", ".txt"))


@user_errors
def summary(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
            block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
            keep_complexity: bool, summary_depth: float, base_planes: float = 64,
            progress=gr.Progress()):
    """API /summary: torchinfo summary of a config (meta device: no weights allocated)."""
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity, base_planes)
    return _summary(selection, summary_depth, progress)


@keep_state
def summary_page(selection: Selection, summary_depth: float, progress=gr.Progress()):
    """The page's summary: of the Selection in use, whenever it or the depth changes."""
    return _summary(selection, summary_depth, progress)


@user_errors
def figures_json(config_json: str, image_size: float | None = None) -> dict:
    """Headline figures and per-stage rows of a config given as JSON (API endpoint /figures).

    `image_size`, when given, overrides the JSON's "image_size" (default 224).
    """
    selection = Selection.from_json(config_json)
    if image_size is not None:
        selection = Selection(selection.config, check_image_size(image_size))
    report = resnext.complexity(selection.config, selection.image_size)
    return {"config": selection.config.to_dict(), "image_size": selection.image_size,
            "preset": selection.preset, **service.headline(selection).as_dict(),
            "stages": [dataclasses.asdict(segment) for segment in report.segments]}


# Layout ----------------------------------------------------------------------------------

class Controls:
    """The config's controls, each built from the library's limits for its value."""

    def __init__(self, initial: Selection) -> None:
        cfg = initial.config
        self.preset = ui.Dropdown(PRESET_CHOICES, value=initial.preset, label="Preset",
                                  info="named networks of the paper, torchvision and the seed blog")
        self.cardinality = ui.Slider(*CARDINALITY_RANGE, value=cfg.cardinality, step=1,
                                     label="Cardinality C", info="parallel paths per block")
        self.keep = gr.Checkbox(False, label="Keep complexity (set d from C, paper Table 2)")
        self.width = ui.Slider(*BOTTLENECK_WIDTH_RANGE, value=cfg.bottleneck_width, step=1,
                               label="Bottleneck width d", info="channels per path in stage 1")
        self.depth = ui.Radio(DEPTH_CHOICES, value=depth_choice(cfg.stage_blocks), label="Depth",
                              info="26–200: four ImageNet stages; 29: the paper's CIFAR net")
        self.blocks = gr.Textbox(
            format_blocks(cfg.stage_blocks), label="Blocks per stage",
            info=f"{STAGES_RANGE[0]}–{STAGES_RANGE[1]} stages of {BLOCKS_PER_STAGE_RANGE[0]}–"
                 f"{BLOCKS_PER_STAGE_RANGE[1]} blocks; Enter applies")
        with gr.Row():
            self.stem = ui.Radio(["imagenet", "cifar"], value=cfg.stem, label="Stem")
            self.form = ui.Radio(["a", "b", "c"], value=cfg.block_form, label="Block form (Fig. 3)")
        self.grouped = gr.Checkbox(cfg.grouped_reduce, label="Seed's grouped first 1×1 conv")
        self.base_planes = ui.Slider(
            *BASE_PLANES_RANGE, value=cfg.base_planes, step=1, label="Base width",
            info="stem channels and stage-1 planes (Table 1: 64; later stages double it)")
        with gr.Row():
            self.image_size = ui.Slider(*IMAGE_SIZE_RANGE, value=initial.image_size, step=1,
                                        label="Input resolution (pixels)")
            self.classes = ui.Number(cfg.num_classes, minimum=NUM_CLASSES_RANGE[0],
                                     maximum=NUM_CLASSES_RANGE[1], label="Classes")
        self.baseline = ui.Dropdown(list(resnext.PRESETS), value=service.DEFAULT_BASELINE,
                                    label="Compare against")

    @property
    def config_inputs(self) -> list[Any]:
        """Handler argument order of analyze/summary (base width last: it came last)."""
        return [self.cardinality, self.width, self.blocks, self.stem, self.form, self.grouped,
                self.classes, self.image_size, self.keep]

    @property
    def settable(self) -> list[Any]:
        """`controls_of` order: the analyze inputs, then the base width."""
        return [*self.config_inputs, self.base_planes]


class Outputs:
    def __init__(self) -> None:
        self.glance = gr.HTML(label="At a glance")
        self.seed_note = gr.Markdown(visible=False)
        self.stages = gr.Dataframe(headers=service.STAGE_COLUMNS, label="Stages",
                                   interactive=False, wrap=True, elem_classes=["rx-table"])
        self.picture = gr.Plot(label="Shape of the network")
        self.link = gr.Markdown(elem_id="config-link")
        with gr.Accordion("torchinfo summary", open=False):
            gr.Markdown("torchinfo's *Mult-Adds* also counts BatchNorm (one per parameter) "
                        "and the fc bias, so it reads slightly above the headline MACs.")
            with gr.Row():
                self.summary_depth = ui.Slider(*service.SUMMARY_DEPTH_RANGE,
                                               value=service.SUMMARY_DEPTH_DEFAULT, step=1,
                                               label="Summary depth")
                self.summary_file = gr.File(label="Download the summary as text",
                                            interactive=False)
            self.summary_table = gr.Dataframe(headers=service.SUMMARY_COLUMNS, interactive=False,
                                              max_height=520, elem_classes=["rx-table"])
        with gr.Accordion("Config as JSON (copy, or paste one to restore it)", open=False):
            self.config_json = gr.Code(language="json", label="Current config", interactive=False)
            self.pasted = gr.Textbox(label="Paste a config JSON", lines=4)
            self.load_json = gr.Button("Load pasted config")


def build(ctx: TabContext) -> None:
    with gr.Row(equal_height=False, elem_classes=["rx-wrap"]):
        with gr.Column(scale=1, min_width=300):
            controls = Controls(default_selection())
        with gr.Column(scale=3, min_width=480):
            outputs = Outputs()
    _wire(ctx, controls, outputs)


# Wiring ----------------------------------------------------------------------------------

def _wire(ctx: TabContext, c: Controls, o: Outputs) -> None:
    _api_endpoints(ctx, c, o)
    page_inputs = [*c.config_inputs, c.baseline, c.base_planes, ctx.selection]
    page_outputs = [ctx.selection, *c.settable, c.preset, c.depth, o.glance, o.stages,
                    o.picture, o.config_json, o.seed_note, o.link]
    quiet = dict(api_visibility="private", show_progress="hidden", trigger_mode="always_last")

    def then_analyze(event: Any) -> None:
        event.then(analyze_page, page_inputs, page_outputs, **quiet, **CHEAP)

    # One event for every control edit: Gradio runs it once at a time per page and then once
    # more with the latest values, so an earlier edit's answer can never land after a later
    # one's and put its values back in the controls.
    edits = [control.input for control in (c.cardinality, c.width, c.image_size,
                                           c.base_planes, c.stem, c.form, c.grouped, c.keep)]
    edits += [c.classes.submit, c.classes.blur, c.blocks.submit, c.blocks.blur]
    # Dropdowns answer `select` (once per pick): Gradio fires their `input` again on blur,
    # and a second apply_preset landing after the user's next edit would undo it.
    edits.append(c.baseline.select)
    gr.on(edits, analyze_page, page_inputs, page_outputs, **quiet, **CHEAP)
    then_analyze(c.depth.input(keep_state(apply_depth.__wrapped__),
                               [c.depth, c.blocks, c.stem, c.image_size, c.classes],
                               [c.blocks, c.stem, c.image_size, c.classes], **quiet))
    then_analyze(c.preset.select(keep_state(apply_preset.__wrapped__), [c.preset], c.settable,
                                 **quiet))
    then_analyze(o.load_json.click(keep_state(apply_json.__wrapped__), [o.pasted], c.settable,
                                   api_visibility="private"))
    # The torchinfo summary builds a (meta) model: its own small queue, redrawn whenever
    # the Selection in use changes (never from the raw controls a second time).
    summary_io = dict(inputs=[ctx.selection, o.summary_depth],
                      outputs=[o.summary_table, o.summary_file], api_visibility="private",
                      show_progress="minimal", trigger_mode="always_last", **SUMMARY_QUEUE)
    ctx.selection.change(summary_page, **summary_io)
    o.summary_depth.release(summary_page, **summary_io)
    # A network chosen in another tab goes through the controls too.
    then_analyze(ctx.selection_request.change(apply_requested, ctx.selection_request,
                                              c.settable, **quiet))
    # First paint: a '?config=' link's network, else the default one.
    then_analyze(ctx.demo.load(apply_link, None, c.settable, **quiet))


def _api_endpoints(ctx: TabContext, c: Controls, o: Outputs) -> None:
    """Named endpoints (README: "HTTP API") on hidden triggers: they raise errors to the
    caller, where the page's twins keep the page as it was. /analyze sets the session's
    Selection, as the sliders do, so later calls (pins, runs, maps) use that network."""
    with gr.Group(visible=False):
        config_json_in = gr.Textbox()
        image_size_in = gr.Number()
        figures_out = gr.JSON()
        analyze_button, summary_button, preset_button, depth_button, json_button, \
            figures_button = (gr.Button() for _ in range(6))
    analyze_button.click(analyze, [*c.config_inputs, c.baseline, c.base_planes],
                         [ctx.selection, c.preset, c.width, c.depth, o.glance, o.stages, o.picture,
                          o.config_json, o.seed_note], api_name="analyze", **CHEAP)
    summary_button.click(summary, [*c.config_inputs, o.summary_depth, c.base_planes],
                         [o.summary_table, o.summary_file], api_name="summary", **SUMMARY_QUEUE)
    preset_button.click(apply_preset, [c.preset], c.settable, api_name="apply_preset")
    depth_button.click(apply_depth, [c.depth, c.blocks, c.stem, c.image_size, c.classes],
                       [c.blocks, c.stem, c.image_size, c.classes], api_name="apply_depth")
    json_button.click(apply_json, [o.pasted], c.settable, api_name="apply_json")
    figures_button.click(figures_json, [config_json_in, image_size_in], figures_out,
                         api_name="figures", **CHEAP)
