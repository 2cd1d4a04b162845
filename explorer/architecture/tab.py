"""Architecture tab: controls for the config, headline numbers, stage table and picture,
torchinfo summary, JSON copy/paste, a link to this network, and the seed blog's differences.

Layout and wiring only: controls -> `Selection` (explorer.selection) -> `view`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import gradio as gr
from gradio.data_classes import FileData

import resnext
from resnext.config import BLOCK_FORMS, STEMS

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
# The settable controls by name, in API order (/apply_preset's answer, /analyze's arguments
# with the baseline before the base width): `selection_from_controls`'s parameters.
SETTABLE = ("cardinality", "bottleneck_width", "blocks_text", "stem", "block_form",
            "grouped_reduce", "num_classes", "image_size", "keep_complexity", "base_planes")
# The API's choices, from the one place each is defined (they show in the API page).
PresetName = Literal[tuple(resnext.PRESETS)]
DepthName = Literal[tuple(DEPTH_CHOICES)]
Stem = Literal[STEMS]
BlockForm = Literal[BLOCK_FORMS]
ControlValues = tuple[float, float, str, Stem, BlockForm, bool, float, float, bool, float]


# Handlers ------------------------------------------------------------------------------
# Page handlers answer by name (`ui.by_name`); the API handlers take plain values and answer
# in API order, and raise where the page's twins keep the page as it was.

def controls_of(selection: Selection, keep_complexity: bool = False) -> dict[str, Any]:
    """The values of the settable controls, by name (in `SETTABLE` order)."""
    cfg = selection.config
    return dict(zip(SETTABLE, (
        cfg.cardinality, cfg.bottleneck_width, format_blocks(cfg.stage_blocks), cfg.stem,
        cfg.block_form, cfg.grouped_reduce, cfg.num_classes, selection.image_size,
        keep_complexity, cfg.base_planes)))



# The controls' first values (the default network), and the API's defaults.
_DEFAULT_SELECTION = default_selection()
DEFAULTS = {**controls_of(_DEFAULT_SELECTION), "preset": _DEFAULT_SELECTION.preset,
            "depth": depth_choice(_DEFAULT_SELECTION.config.stage_blocks)}


def _view_outputs(view: service.ArchitectureView, keep_complexity: bool) -> dict[str, Any]:
    selection = view.selection
    return {
        "preset": gr.update(value=selection.preset),
        "bottleneck_width": gr.update(value=selection.config.bottleneck_width,
                                      interactive=not keep_complexity),
        "depth": gr.update(value=depth_choice(selection.config.stage_blocks)),
        "glance": view.headline_html,
        "stages": view.stage_rows,
        "picture": view.figure,
        "config_json": view.config_json,
        "seed_note": gr.update(value=view.seed_note, visible=bool(view.seed_note)),
    }


@user_errors
def analyze(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
            block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
            keep_complexity: bool, baseline: str, base_planes: float = 64) -> dict[str, Any]:
    """API /analyze: the numbers for control values (everything but the torchinfo summary).

    Returns preset, d, depth, headline HTML, stage table, figure, JSON, seed note (and sets
    the session's Selection).
    """
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity, base_planes)
    return {"selection": selection,
            **_view_outputs(service.view(selection, baseline), keep_complexity)}


def _controls_back(*args: Any) -> dict[str, Any]:
    """After a refused value: every control shows the Selection in use again."""
    selection, keep = args[-1], args[8]
    return {**controls_of(selection, keep),
            "depth": gr.update(value=depth_choice(selection.config.stage_blocks))}


@keep_state(restore=_controls_back)
def analyze_page(cardinality: float, bottleneck_width: float, blocks_text: str, stem: str,
                 block_form: str, grouped_reduce: bool, num_classes: float, image_size: float,
                 keep_complexity: bool, baseline: str, base_planes: float,
                 in_use: Selection) -> dict[str, Any]:
    """The page: as /analyze, and every control shows the value in use (blocks normalised,
    d from C under keep complexity), plus the link to this network.

    Only a control whose value the handler changed is written: one the person edits while
    this answer is on its way keeps their new value (and the event for it, which Gradio runs
    next, reads that value)."""
    sent = dict(zip(SETTABLE, (cardinality, bottleneck_width, blocks_text, stem, block_form,
                               grouped_reduce, num_classes, image_size, keep_complexity,
                               base_planes)))
    selection = selection_from_controls(**sent)
    view = service.view(selection, baseline)
    changed = {name: value for name, value in controls_of(selection, keep_complexity).items()
               if not _same_value(sent[name], value)}
    # d's box also locks under keep complexity, whether or not its value changed.
    width = {"value": changed["bottleneck_width"]} if "bottleneck_width" in changed else {}
    changed["bottleneck_width"] = gr.update(interactive=not keep_complexity, **width)
    return {"selection": selection, **_view_outputs(view, keep_complexity), **changed,
            "link": _link_markdown(view.link)}


def _same_value(sent: Any, shown: Any) -> bool:
    """Whether a control already shows `shown` (numbers compare as numbers: 32.0 is 32)."""
    if isinstance(sent, (int, float)) and not isinstance(sent, bool) and isinstance(
            shown, (int, float)) and not isinstance(shown, bool):
        return float(sent) == float(shown)
    return sent == shown


def _link_markdown(query: str) -> str:
    return (f"[Link to this network]({query}) — open it (or share it) to get this same network "
            f"on screen.")


def _in_api_order(controls: dict[str, Any]) -> ControlValues:
    return tuple(controls[name] for name in SETTABLE)  # type: ignore[return-value]


@keep_state
def preset_controls(preset: str) -> dict[str, Any]:
    """The page: a preset's control values ('custom' leaves the controls as they are)."""
    if preset == CUSTOM:
        return gr.skip()
    return controls_of(service.preset_selection(preset))


@user_errors
def apply_preset(preset: PresetName = DEFAULTS["preset"]) -> ControlValues:
    """API /apply_preset: the control values of a preset, in /analyze's argument order
    (C, d, blocks, stem, form, grouped 1x1, classes, input side, keep complexity, base
    width)."""
    if preset == CUSTOM:
        raise ValueError("preset 'custom' stands for the values on the page's controls: it has "
                         "none of its own; choose a named preset")
    return _in_api_order(controls_of(service.preset_selection(preset)))


def _depth_setting(depth: str, blocks_text: str, stem: str, image_size: Any,
                   num_classes: Any) -> dict[str, Any]:
    """Blocks, stem, input side and classes for a depth choice (by name).

    29 is the paper's CIFAR net (Sec. 5.2): choosing it from an ImageNet setting brings the
    CIFAR stem, 32 px and 10 classes; 26-200 (Table 1) bring the ImageNet ones back.
    """
    if depth == CUSTOM:
        return dict(blocks_text=blocks_text, stem=stem, image_size=image_size,
                    num_classes=num_classes)
    setting = service.depth_setting(depth, stem, check_image_size(image_size), num_classes)
    if setting.note:
        gr.Info(setting.note)
    return dict(blocks_text=format_blocks(setting.stage_blocks), stem=setting.stem,
                image_size=setting.image_size, num_classes=setting.num_classes)


depth_controls = keep_state(_depth_setting)  # the page's twin: a refusal keeps the controls


@user_errors
def apply_depth(depth: DepthName = DEFAULTS["depth"],
                blocks_text: str = DEFAULTS["blocks_text"], stem: Stem = DEFAULTS["stem"],
                image_size: float = DEFAULTS["image_size"],
                num_classes: float = DEFAULTS["num_classes"]) -> tuple[str, Stem, float, float]:
    """API /apply_depth: blocks per stage, stem, input side and classes for a depth choice
    ('custom': as sent). Each value sent is checked as the controls' would be (on the
    default network: only these four are sent)."""
    sent = dict(blocks_text=blocks_text, stem=stem, image_size=image_size,
                num_classes=num_classes)
    selection_from_controls(**{**controls_of(_DEFAULT_SELECTION), **sent})
    return tuple(_depth_setting(depth, **sent).values())  # type: ignore[return-value]


@keep_state
def pasted_controls(text: str) -> dict[str, Any]:
    """The page: the control values of a pasted config JSON."""
    return controls_of(Selection.from_json(text))


@user_errors
def apply_json(text: str) -> ControlValues:
    """API /apply_json: the control values of a config JSON, in /analyze's argument order."""
    return _in_api_order(controls_of(Selection.from_json(text)))


def apply_requested(selection: Selection | None) -> dict[str, Any]:
    """Another tab chose a network (a trained run, a smaller variant): show it here."""
    return gr.skip() if selection is None else controls_of(selection)


def apply_link(request: gr.Request) -> dict[str, Any]:
    """On page load: a '?config=' link puts its network on the controls."""
    try:
        selection = Selection.from_link(dict(request.query_params) if request else {})
    except ValueError as error:
        gr.Warning(f"The link's config was not applied: {error}")
        return gr.skip()
    if selection is None:
        return gr.skip()
    return controls_of(selection)


def _summary(selection: Selection, summary_depth: Any) -> dict[str, Any]:
    rows, text = service.summary_rows(selection, summary_depth)
    content = (f"{selection.config.name}, {selection.image_size}x{selection.image_size}\n"
               f"{selection.to_json()}\n{text}\n")
    return {"table": rows,
            "file": str(downloads.write_download(content, "resnext-summary", ".txt"))}


@user_errors
def summary(cardinality: float = DEFAULTS["cardinality"],
            bottleneck_width: float = DEFAULTS["bottleneck_width"],
            blocks_text: str = DEFAULTS["blocks_text"], stem: Stem = DEFAULTS["stem"],
            block_form: BlockForm = DEFAULTS["block_form"],
            grouped_reduce: bool = DEFAULTS["grouped_reduce"],
            num_classes: float = DEFAULTS["num_classes"],
            image_size: float = DEFAULTS["image_size"],
            keep_complexity: bool = DEFAULTS["keep_complexity"],
            summary_depth: float = service.SUMMARY_DEPTH_DEFAULT,
            base_planes: float = DEFAULTS["base_planes"]) -> tuple[dict, FileData]:
    """API /summary: torchinfo summary of a config (meta device: no weights allocated): the
    table (headers, rows) and a .txt file of torchinfo's own text."""
    selection = selection_from_controls(cardinality, bottleneck_width, blocks_text, stem,
                                        block_form, grouped_reduce, num_classes, image_size,
                                        keep_complexity, base_planes)
    made = _summary(selection, summary_depth)
    # What the page's gr.Dataframe and gr.File send, so the client downloads the file.
    return ({"headers": service.SUMMARY_COLUMNS, "data": made["table"], "metadata": None},
            FileData(path=made["file"]))


@keep_state
def summary_page(selection: Selection, summary_depth: float,
                 progress=gr.Progress()) -> dict[str, Any]:
    """The page's summary: of the Selection in use, whenever it or the depth changes."""
    progress(0.1, desc=f"building {selection.config.name} on the meta device")
    return _summary(selection, summary_depth)


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
            self.stem = ui.Radio(list(STEMS), value=cfg.stem, label="Stem")
            self.form = ui.Radio(list(BLOCK_FORMS), value=cfg.block_form,
                                 label="Block form (Fig. 3)")
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
    def settable(self) -> dict[str, Any]:
        """The controls a handler may set, by `SETTABLE` name (and in that order)."""
        return dict(zip(SETTABLE, (self.cardinality, self.width, self.blocks, self.stem,
                                   self.form, self.grouped, self.classes, self.image_size,
                                   self.keep, self.base_planes)))

    @property
    def config_inputs(self) -> list[Any]:
        """Handler argument order of analyze/summary (base width last: it came last)."""
        return list(self.settable.values())[:-1]


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

    @property
    def shown(self) -> dict[str, Any]:
        """What the numbers of a Selection fill (`_view_outputs` names, less the controls)."""
        return {"glance": self.glance, "stages": self.stages, "picture": self.picture,
                "config_json": self.config_json, "seed_note": self.seed_note}


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
    page_outputs = {"selection": ctx.selection, **c.settable, "preset": c.preset,
                    "depth": c.depth, **o.shown, "link": o.link}
    quiet = dict(api_visibility="private", show_progress="hidden", trigger_mode="always_last")

    def then_analyze(event: Any) -> None:
        event.then(**ui.by_name(analyze_page, page_outputs), inputs=page_inputs, **quiet,
                   **CHEAP)

    # One event for every control edit: Gradio runs it once at a time per page and then once
    # more with the latest values, so an earlier edit's answer can never land after a later
    # one's and put its values back in the controls.
    edits = [control.input for control in (c.cardinality, c.width, c.image_size,
                                           c.base_planes, c.stem, c.form, c.grouped, c.keep)]
    edits += [c.classes.submit, c.classes.blur, c.blocks.submit, c.blocks.blur]
    # Dropdowns answer `select` (once per pick): Gradio fires their `input` again on blur,
    # and a second apply_preset landing after the user's next edit would undo it.
    edits.append(c.baseline.select)
    gr.on(edits, **ui.by_name(analyze_page, page_outputs), inputs=page_inputs, **quiet, **CHEAP)
    depth_io = {name: c.settable[name]
                for name in ("blocks_text", "stem", "image_size", "num_classes")}
    then_analyze(c.depth.input(**ui.by_name(depth_controls, depth_io),
                               inputs=[c.depth, *depth_io.values()], **quiet))
    then_analyze(c.preset.select(**ui.by_name(preset_controls, c.settable), inputs=[c.preset],
                                 **quiet))
    then_analyze(o.load_json.click(**ui.by_name(pasted_controls, c.settable), inputs=[o.pasted],
                                   api_visibility="private"))
    # The torchinfo summary builds a (meta) model: its own small queue, redrawn whenever
    # the Selection in use changes (never from the raw controls a second time).
    summary_io = dict(**ui.by_name(summary_page, {"table": o.summary_table,
                                                  "file": o.summary_file}),
                      inputs=[ctx.selection, o.summary_depth], api_visibility="private",
                      show_progress="minimal", trigger_mode="always_last", **SUMMARY_QUEUE)
    ctx.selection.change(**summary_io)
    o.summary_depth.release(**summary_io)
    # A network chosen in another tab goes through the controls too.
    then_analyze(ctx.selection_request.change(**ui.by_name(apply_requested, c.settable),
                                              inputs=ctx.selection_request, **quiet))
    # First paint: a '?config=' link's network, else the default one.
    then_analyze(ctx.demo.load(**ui.by_name(apply_link, c.settable), inputs=None, **quiet))


def _api_endpoints(ctx: TabContext, c: Controls, o: Outputs) -> None:
    """Named endpoints (README: "HTTP API"); they raise errors to the caller, where the
    page's twins keep the page as it was. /analyze sets the session's Selection, as the
    sliders do, so later calls (pins, runs, maps) use that network: an event on a hidden
    trigger, since only events reach session state. The others hold none: `gr.api`."""
    with gr.Group(visible=False):
        analyze_button = gr.Button()
    analyze_outputs = {"selection": ctx.selection, "preset": c.preset,
                       "bottleneck_width": c.width, "depth": c.depth,
                       **o.shown}
    analyze_button.click(**ui.by_name(analyze, analyze_outputs),
                         inputs=[*c.config_inputs, c.baseline, c.base_planes],
                         api_name="analyze", **CHEAP)
    ui.api(summary, "summary", **SUMMARY_QUEUE)
    ui.api(apply_preset, "apply_preset")
    ui.api(apply_depth, "apply_depth")
    ui.api(apply_json, "apply_json")
    ui.api(figures_json, "figures", **CHEAP)
