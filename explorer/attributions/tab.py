"""Attributions tab: lays out the weights panel, the image, a Captum method and its results,
and wires them. The work is in `explanation` (one request end to end), `resnext.explain`
(Captum), `figures` and `shared.drawing` (what is drawn) and `shared.weights_choice`.

Each action has two doors: the page's (a refused value shows a message and every output
keeps its value, `keep_state`) and the HTTP API's (`/attr_weights`, `/attribute`,
`/attribute_grid`, `/feature_maps`: a refused value raises, `user_errors`). Both call the
same service function with the same values, in the order `explanation` defines.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gradio as gr

import resnext
from resnext.explain import single as attribution
from resnext.explain.baselines import BLUR_SIDE_DIVISOR
from resnext.explain.single import LIMITS, AttributionSettings, Limit
from resnext.explain.stopping import Stopped

from .. import components as ui
from ..context import TabContext
from ..errors import keep_state, user_errors, user_message
from ..selection import Selection, default_selection
from ..shared import drawing
from ..shared.cancellation import CANCEL_FLAGS, CLICK_TIME_JS, work_key
from ..shared.devices import device_choices, initial_choices, resolve_device
from ..shared.drawing import OPACITY, Display
from ..shared.images import crop_preview
from ..shared.models import IMAGENET, RANDOM, UPLOAD, WeightsChoice
from ..shared.weights_choice import (KIND_LABELS, PanelValues, choose_weights, describe,
                                     imagenet_choices, network_for, no_imagenet_weights,
                                     panel_applied)
from ..uploads import UploadedImage
from . import explanation, figures
from .explanation import (ATTRIBUTE_ARGUMENTS, CANCELLED_MESSAGE, GRID_ARGUMENTS, GRID_MODES,
                          ExplainRequest, GridRequest)

# One queue for everything that builds or runs a model here: attributions on a 2-core CPU
# are seconds to minutes each, and running two at once only makes both slower.
ATTRIBUTION_QUEUE = dict(concurrency_id="attribution", concurrency_limit=1)
FEATURE = "attributions"  # its Cancel flags (shared.cancellation)
DEFAULT_SETTINGS = AttributionSettings()
DEFAULT_DISPLAY = Display()
PRIVATE = dict(api_visibility="private")  # page events: not in "Use via API"
QUIET = dict(api_visibility="private", queue=False, show_progress="hidden")


def _slider(name: str | Limit, value: float, step: float = 1, **kwargs: Any) -> gr.Slider:
    """A slider whose range and label are the library's limit for `name` (or a display
    limit of the app's); a value outside it reaches the check, which names the control."""
    limit = LIMITS[name] if isinstance(name, str) else name
    return ui.Slider(limit.low, limit.high, value=value, step=step, label=limit.label, **kwargs)


def _state(selection: Any, weights: Any) -> tuple[Selection, WeightsChoice]:
    return (selection if isinstance(selection, Selection) else default_selection(),
            weights if isinstance(weights, WeightsChoice) else WeightsChoice())


def _endpoint(name: str, names: Sequence[str], body: Callable[[dict, Any, Any], Any]) -> Callable:
    """A handler taking `names` positionally, then Gradio's request and progress.

    Its signature lists the names, so "Use via API" documents each argument by the name the
    services use; `body` gets them as a dict.
    """
    def handler(*args: Any) -> Any:
        values = dict(zip(names, args))
        rest = args[len(names):]
        return body(values, rest[0] if rest else None, rest[1] if len(rest) > 1 else None)

    parameter = inspect.Parameter
    handler.__signature__ = inspect.Signature(
        [parameter(name, parameter.POSITIONAL_OR_KEYWORD) for name in names]
        + [parameter("request", parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request),
           parameter("progress", parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())])
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = body.__doc__
    return handler


def _progress(progress: Any) -> Callable[..., None]:
    return progress if progress is not None else (lambda *args, **kwargs: None)


def _cancellable(run: Callable[[Any], Any], request: Any, clicked_at: Any = None) -> Any:
    """Run with the session's fresh cancel flag (`run(should_stop)`). A cancel is an error
    for the API (no press time); for the page, `Stopped` reaches `keep_state`, which leaves
    the page unchanged, as it does for work pressed before the latest Cancel (it waited in
    the queue)."""
    try:
        with CANCEL_FLAGS.work(work_key(request, FEATURE), clicked_at) as flag:
            return run(flag.is_set)
    except Stopped:
        if clicked_at is not None:
            raise
        raise gr.Error(CANCELLED_MESSAGE, print_exception=False) from None


def _page_work(name: str, names: Sequence[str], body: Callable[[dict, Any, Any], Any]
               ) -> Callable:
    """A page twin of an endpoint: its last input is the press's browser time (CLICK_TIME_JS),
    and failures are toasts that leave the page as it was (`keep_state`)."""
    return keep_state(_endpoint(name, [*names, "clicked_at"], body))


# Handlers: weights -------------------------------------------------------------------------

@user_errors
def set_weights(kind: str, seed: float, imagenet_name: str, checkpoint: Any, selection: Any,
                device: str, progress=gr.Progress(track_tqdm=True)):
    """Load and check a weights choice (API: /attr_weights); it becomes the session's weights."""
    selection, _ = _state(selection, None)
    _progress(progress)(0.1, desc="loading weights")
    choice = choose_weights(kind, seed, imagenet_name, checkpoint, selection,
                            resolve_device(device).key)
    return {"weights": choice, "weights_status": describe(choice, selection)}


def apply_weights(kind: str, seed: float, imagenet_name: str, checkpoint: Any, selection: Any,
                  weights: Any, device: str, progress=gr.Progress(track_tqdm=True)):
    """The page's "Use these weights": on failure the message shows, the weights in use stay
    and the panel goes back to them."""
    selection, weights = _state(selection, weights)
    try:
        return set_weights.__wrapped__(kind, seed, imagenet_name, checkpoint, selection,
                                       device, progress)
    except Exception as error:  # noqa: BLE001 - shown, never a traceback
        message = user_message("apply_weights", error)
        gr.Warning(message)
        return {"weights_status": f"**Not loaded:** {message}\n\n{describe(weights, selection)}",
                **_panel_values(weights)}


def show_weight_inputs(kind: str):
    return {"seed": gr.update(visible=kind == RANDOM),
            "imagenet_name": gr.update(visible=kind == IMAGENET),
            "checkpoint": gr.update(visible=kind == UPLOAD)}


def _panel_values(weights: WeightsChoice) -> dict[str, Any]:
    """The panel's controls for the weights in use: kind, and the seed or ImageNet name."""
    panel: dict[str, Any] = {"kind": weights.kind, "seed": weights.seed}
    if weights.kind == IMAGENET:
        panel["imagenet_name"] = weights.name
    return panel


@keep_state
def panel_of(weights: Any):
    """The panel shows the weights in use when they change elsewhere (the Train tab's "Use
    this run", a load): kind, and the seed or ImageNet name it has."""
    _, weights = _state(None, weights)
    panel = _panel_values(weights)
    if weights.kind != RANDOM:
        del panel["seed"]
    return panel


@keep_state
def samples_for(selection: Any, weights: Any):
    """The sample photos of the network the weights imply (a trained run's test images)."""
    network = network_for(*reversed(_state(selection, weights)))
    return gr.Dataset(samples=[[str(path)] for path in network.samples])


def use_sample(sample: Any):
    """A clicked sample goes into the image box."""
    return sample[0] if sample else gr.skip()


@keep_state
def weights_status(selection: Any, weights: Any, kind: str, seed: Any, imagenet_name: str):
    """What runs use now, for the network on screen, and whether the panel shows another
    choice not yet applied."""
    selection, weights = _state(selection, weights)
    return describe(weights, selection, PanelValues(kind, seed, imagenet_name))


@keep_state
def imagenet_list(selection: Any, current: str | None):
    """Only the ImageNet weights that fit the Architecture tab's network, or why none do."""
    selection, _ = _state(selection, None)
    names = imagenet_choices(selection)
    if not names:
        return gr.update(choices=[], value=None, info=no_imagenet_weights(selection) + ".")
    return gr.update(choices=names, value=current if current in names else names[0],
                     info=f"those that fit {selection.config.name}; from torch's hub cache, "
                          f"downloaded if online")


@keep_state
def pickers_for(selection: Any, weights: Any, layer: str, target: Any):
    """Grad-CAM layers and target classes of the network the weights imply; the current
    picks stay where they still exist."""
    network = network_for(*reversed(_state(selection, weights)))
    layers = attribution.layer_choices(network.config)
    targets = figures.target_choices(network.class_names)
    return {"layer": gr.update(choices=[("last stage (default)", "")] + [(n, n) for n in layers],
                               value=layer if layer in layers else ""),
            "target": gr.update(choices=targets,
                                value=target if target in targets else targets[0])}


# Handlers: image ---------------------------------------------------------------------------

def show_crop(image: Any, selection: Any, weights: Any):
    """The photo with the centre crop the network sees outlined (the photo alone when the
    crop cuts nothing); a file that is not an image is said so at once and removed from the
    image box."""
    if image is None:
        return {"crop": None}
    network = network_for(*reversed(_state(selection, weights)))
    try:
        return {"crop": crop_preview(image, network.preprocessing)}
    except Exception as error:  # noqa: BLE001 - the message says what is wrong with the file
        gr.Warning(f"Image: {user_message('show_crop', error)}")
        return {"crop": None, "image": None}


# Handlers: explain -------------------------------------------------------------------------

def _explain(values: dict, request: Any, progress: Any) -> explanation.Explanation:
    explain_request = ExplainRequest.from_values(values, values["selection"], values["weights"])
    return _cancellable(lambda should_stop: explanation.explain(
        explain_request, _progress(progress), should_stop), request, values.get("clicked_at"))


def _attribute_api(values: dict, request: Any, progress: Any):
    """One map on the image (API: /attribute): overlay, top-5, summary, deletion curve, the
    raw map as .npy, and the state the display controls redraw from."""
    result = _explain(values, request, progress)
    return {"overlay": result.overlay, "top5_label": result.top_label,
            "summary": result.summary, "deletion": result.figure, "raw_map": result.map_path,
            "last": result.redraw_state}


def _attribute_page(values: dict, request: Any, progress: Any):
    selection, weights = _state(values["selection"], values["weights"])
    panel = PanelValues(values["kind"], values["seed"], values["imagenet_name"])
    if not panel_applied(panel, weights):
        gr.Warning(f"The weights panel's choice is not applied: this map uses "
                   f"{weights.label}. Press “Use these weights” to load the other.")
    result = _explain(values, request, progress)
    return {"overlay": result.overlay, "top5": result.top_html, "summary": result.summary,
            "deletion": result.figure, "raw_map": result.map_path, "last": result.redraw_state,
            "colour_bar": result.colour_bar}


STATE_ARGUMENTS = ("selection", "weights")
PANEL_ARGUMENTS = ("kind", "seed", "imagenet_name")
run_attribution = user_errors(_endpoint("run_attribution", ATTRIBUTE_ARGUMENTS + STATE_ARGUMENTS,
                                        _attribute_api))
run_attribution_page = _page_work(
    "run_attribution", ATTRIBUTE_ARGUMENTS + STATE_ARGUMENTS + PANEL_ARGUMENTS, _attribute_page)


def _grid(values: dict, request: Any, progress: Any):
    """Maps side by side (API: /attribute_grid): several methods on one image, or one method
    on this network and a preset. Gallery items, a summary table and the curves."""
    grid = GridRequest.from_values(values, values["selection"], values["weights"])
    result = _cancellable(lambda should_stop: explanation.explain_grid(
        grid, _progress(progress), should_stop), request, values.get("clicked_at"))
    return {"grid": result.gallery, "grid_summary": result.table, "grid_curves": result.figure}


run_grid = user_errors(_endpoint("run_grid", GRID_ARGUMENTS + STATE_ARGUMENTS, _grid))
run_grid_page = _page_work("run_grid", GRID_ARGUMENTS + STATE_ARGUMENTS, _grid)


def feature_maps(image: Any, selection: Any, weights: Any, device: str, channels: float):
    """Each stage's strongest channels for the image (API: /feature_maps): gallery items."""
    return explanation.stage_features(image, selection, weights, device, channels)


def redraw(last: Any, sign: str, colormap: str, opacity: float):
    """The overlay and colour bar again with other display settings (no recomputation)."""
    drawn = explanation.redraw(last, Display(sign, colormap, opacity))
    return {} if drawn is None else {"overlay": drawn[0], "colour_bar": drawn[1]}


def choose_sign(last: Any, sign: str, colormap: str, opacity: float):
    """A sign brings the colour maps that read right for it (diverging for "all")."""
    maps = drawing.colormaps_for(sign)
    colormap = colormap if colormap in maps else maps[0]
    display = Display(sign, colormap, opacity)
    drawn = explanation.redraw(last, display)
    answer = {"colormap": gr.update(choices=list(maps), value=colormap)}
    if drawn is None:
        return {**answer, "colour_bar": figures.colour_bar_html(None, display)}
    return {**answer, "overlay": drawn[0], "colour_bar": drawn[1]}


@keep_state
def stride_for_window(window: float, stride: float):
    """Occlusion's stride can be at most its window: the slider ends at the window."""
    window = min(max(int(window), int(LIMITS["stride"].low)), int(LIMITS["stride"].high))
    return gr.update(maximum=window, value=min(stride, window))


def request_cancel(clicked_at: Any = None, request: gr.Request = None) -> None:
    """Stop this session's running attribution at the model's next forward pass (the page
    keeps its earlier results); one waiting in the queue is dropped when its turn comes."""
    if CANCEL_FLAGS.cancel(work_key(request, FEATURE), clicked_at):
        gr.Info(CANCELLED_MESSAGE)
    else:
        gr.Info("No attribution was running; one waiting in the queue, if any, is dropped.")


# Layout ------------------------------------------------------------------------------------

@dataclass
class _Controls:
    """The tab's components by the names the services use for their values."""

    inputs: dict[str, Any]
    views: dict[str, Any]
    buttons: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        for group in (self.inputs, self.views, self.buttons):
            if name in group:
                return group[name]
        raise KeyError(name)

    def all(self, names: Sequence[str]) -> list[Any]:
        return [self[name] for name in names]

    def answering(self, handler: Callable) -> Callable:
        """`handler`, whose `{name: value}` answers land on these components."""
        return ui.named(handler, {**self.inputs, **self.views, **self.buttons})


def _weights_panel(inputs: dict, buttons: dict, views: dict, initial: Selection) -> None:
    with gr.Accordion("Weights", open=True):
        inputs["kind"] = ui.Radio(KIND_LABELS, value=RANDOM, label="Weights",
                                  info="shared with the Run tab")
        inputs["seed"] = ui.Number(0, precision=0, minimum=0, label="Seed", visible=True)
        names = imagenet_choices(initial)
        inputs["imagenet_name"] = gr.Dropdown(
            names, value=names[0] if names else None, label="torchvision ImageNet weights",
            visible=False, allow_custom_value=True,
            info=f"those that fit {initial.config.name}; from torch's hub cache, downloaded "
                 f"if online")
        inputs["checkpoint"] = gr.File(
            label="Checkpoint (.pth/.pt state_dict, loaded weights_only)",
            file_types=[".pth", ".pt"], visible=False, type="filepath", elem_id="attr-checkpoint")
        buttons["apply_weights"] = gr.Button("Use these weights")
        views["weights_status"] = gr.Markdown(describe(WeightsChoice(), initial),
                                              elem_id="attr-weights-status")


def _image_inputs(inputs: dict, views: dict, samples: list[str]) -> None:
    inputs["image"] = UploadedImage(type="filepath", image_mode=None, label="Image",
                                    elem_id="attr-image", sources=["upload", "clipboard"],
                                    height=240)
    views["crop"] = gr.Image(label="What the network sees (the crop outlined when it cuts the photo)",
                             interactive=False, height=160, elem_id="attr-crop",
                             show_label=True, buttons=[])
    # The weights choice brings its samples (a trained run: its test images), so this is a
    # Dataset the wiring refills, not fixed gr.Examples.
    views["samples"] = gr.Dataset(components=[inputs["image"]], samples=[[p] for p in samples],
                                  label="Sample photos", type="values", elem_id="attr-samples")


def _method_inputs(inputs: dict, initial: Selection, default_device: str) -> None:
    network = network_for(WeightsChoice(), initial)
    inputs["method"] = ui.Dropdown([(label, key) for key, label in attribution.METHODS.items()],
                                   value=DEFAULT_SETTINGS.method, label="Method")
    inputs["target"] = gr.Dropdown(figures.target_choices(network.class_names),
                                   value=figures.PREDICTED_CLASS, label="Target class",
                                   info="the predicted class, or any class by name",
                                   filterable=True, allow_custom_value=True)
    s = DEFAULT_SETTINGS
    with gr.Accordion("Method parameters", open=False):
        inputs["layer"] = ui.Dropdown(
            [("last stage (default)", "")]
            + [(n, n) for n in attribution.layer_choices(network.config)],
            value=s.layer, label="Grad-CAM layer (stage or block)")
        inputs["n_steps"] = _slider("n_steps", s.n_steps)
        inputs["baseline"] = ui.Radio(list(attribution.BASELINES), value=s.baseline,
                                      label="Baseline (IG, DeepLift, GradientShap, Occlusion)",
                                      info=f"blurred: Gaussian, sigma = the shorter side / "
                                           f"{BLUR_SIDE_DIVISOR} (as in the Evaluate tab)")
        inputs["smoothgrad_over"] = ui.Radio(
            [("saliency", "saliency"), ("Integrated Gradients", "integrated_gradients")],
            value=s.smoothgrad_over, label="SmoothGrad over")
        inputs["n_samples"] = _slider("n_samples", s.n_samples)
        inputs["noise_level"] = _slider("noise_level", s.noise_level, step=0.01)
        with gr.Row():
            inputs["window"] = _slider("window", s.window)
            inputs["stride"] = _slider("stride", s.stride, info="at most the window")
        inputs["internal_batch_size"] = _slider("internal_batch_size", s.internal_batch_size,
                                                info="images per forward: bounds memory")
    # Filled with every device when the page loads (torch is not imported before).
    inputs["device"] = ui.Dropdown(initial_choices(default_device), value=default_device,
                                   label="Device")


def _result_views(inputs: dict, views: dict) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=260):
            views["overlay"] = gr.Image(label="Attribution overlay (what the network sees)",
                                        type="numpy", format="png", interactive=False,
                                        height=320, elem_id="attr-overlay")
            views["colour_bar"] = gr.HTML(figures.colour_bar_html(None, DEFAULT_DISPLAY),
                                          elem_id="attr-colour-bar")
        with gr.Column(scale=2, min_width=220):
            views["top5"] = gr.HTML(elem_id="attr-top5", min_height=120)
    with gr.Row():
        d = DEFAULT_DISPLAY
        inputs["opacity"] = _slider(OPACITY, d.opacity, step=0.05)
        inputs["sign"] = ui.Radio(list(drawing.SIGNS), value=d.sign, label="Sign")
        inputs["colormap"] = ui.Dropdown(list(drawing.colormaps_for(d.sign)),
                                         value=d.colormap, label="Colour map")
    views["summary"] = gr.Markdown(elem_id="attr-summary")
    views["deletion"] = gr.Plot(label="Faithfulness", elem_id="attr-deletion")
    views["raw_map"] = gr.File(label="Raw map (.npy, channels × height × width)",
                               interactive=False)
    # The API's top-5 keeps its {label: probability} form; the page shows `top5`.
    views["top5_label"] = gr.Label(num_top_classes=5, visible=False)
    views["last"] = gr.State(None)


def _grid_section(inputs: dict, views: dict, buttons: dict) -> None:
    with gr.Accordion("Grid: methods or configs side by side", open=False):
        with gr.Row():
            inputs["mode"] = ui.Radio([(label, key) for key, label in GRID_MODES.items()],
                                      value="methods", label="Grid")
            inputs["compare_preset"] = ui.Dropdown(list(resnext.PRESETS),
                                                   value=explanation.DEFAULT_COMPARE_PRESET,
                                                   label="Second config (configs mode)")
        inputs["methods"] = gr.CheckboxGroup(
            [(label, key) for key, label in attribution.METHODS.items()],
            value=list(explanation.DEFAULT_GRID_METHODS), label="Methods (methods mode)")
        buttons["grid_run"] = gr.Button("Explain side by side")
        views["grid"] = gr.Gallery(label="Maps", columns=3, height="auto", object_fit="contain",
                                   elem_id="attr-grid")
        views["grid_summary"] = gr.Markdown(elem_id="attr-grid-summary")
        views["grid_curves"] = gr.Plot(label="Deletion curves")


def _features_section(inputs: dict, views: dict, buttons: dict) -> None:
    with gr.Accordion("Feature maps: what each stage responds to", open=False):
        inputs["channels"] = _slider(figures.CHANNELS, figures.FEATURE_CHANNELS)
        buttons["features_run"] = gr.Button("Show feature maps")
        views["features"] = gr.Gallery(label="Strongest channels per stage", columns=2,
                                       height="auto", object_fit="contain")


def _layout(ctx: TabContext) -> _Controls:
    initial = default_selection()
    samples = [str(p) for p in network_for(WeightsChoice(), initial).samples]
    inputs: dict[str, Any] = {"selection": ctx.selection, "weights": ctx.weights}
    views: dict[str, Any] = {}
    buttons: dict[str, Any] = {}
    # The two columns' minimum widths add up to more than an 800 px window holds, so there
    # they stack (inputs above results) instead of squeezing both.
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340):
            _weights_panel(inputs, buttons, views, initial)
            _image_inputs(inputs, views, samples)
            _method_inputs(inputs, initial, ctx.options.default_device)
            with gr.Row():
                buttons["explain"] = gr.Button("Explain", variant="primary")
                buttons["cancel"] = gr.Button("Cancel", variant="stop")
                # The press time of Explain, Grid or Cancel (browser ms, set by CLICK_TIME_JS).
                inputs["clicked_at"] = gr.Number(0, visible=False)
        with gr.Column(scale=2, min_width=440):
            _result_views(inputs, views)
            _grid_section(inputs, views, buttons)
            _features_section(inputs, views, buttons)
    return _Controls(inputs, views, buttons)


# Wiring ------------------------------------------------------------------------------------

def _wire_weights(ctx: TabContext, c: _Controls) -> None:
    panel = c.all(PANEL_ARGUMENTS)
    c["kind"].change(c.answering(show_weight_inputs), c["kind"],
                     c.all(["seed", "imagenet_name", "checkpoint"]), **QUIET)
    c["apply_weights"].click(
        c.answering(apply_weights), c.all(["kind", "seed", "imagenet_name", "checkpoint",
                                           "selection", "weights", "device"]),
        [ctx.weights, c["weights_status"], *panel], **PRIVATE, **ATTRIBUTION_QUEUE)
    status_inputs = [ctx.selection, ctx.weights, *panel]
    for control in panel:
        control.input(weights_status, status_inputs, c["weights_status"], **QUIET)
    ctx.selection.change(weights_status, status_inputs, c["weights_status"], **QUIET)
    ctx.weights.change(c.answering(panel_of), ctx.weights, panel, **QUIET).then(
        weights_status, status_inputs, c["weights_status"], **QUIET)
    for state in (ctx.selection, ctx.weights):
        state.change(c.answering(pickers_for), c.all(["selection", "weights", "layer", "target"]),
                     c.all(["layer", "target"]), **QUIET)
        state.change(c.answering(show_crop), c.all(["image", "selection", "weights"]),
                     [c["crop"], c["image"]], **PRIVATE, show_progress="hidden",
                     trigger_mode="always_last")
    ctx.weights.change(samples_for, [ctx.selection, ctx.weights], c["samples"], **QUIET)
    c["samples"].click(use_sample, c["samples"], c["image"], **QUIET)
    ctx.selection.change(imagenet_list, [ctx.selection, c["imagenet_name"]],
                         c["imagenet_name"], **QUIET)


def _wire_explain(c: _Controls) -> None:
    c["image"].change(c.answering(show_crop), c.all(["image", "selection", "weights"]),
                      [c["crop"], c["image"]], **PRIVATE, show_progress="hidden",
                      trigger_mode="always_last")
    page_outputs = c.all(["overlay", "top5", "summary", "deletion", "raw_map", "last",
                          "colour_bar"])
    c["explain"].click(
        c.answering(run_attribution_page),
        c.all([*ATTRIBUTE_ARGUMENTS, *STATE_ARGUMENTS, *PANEL_ARGUMENTS, "clicked_at"]),
        page_outputs, js=CLICK_TIME_JS, **PRIVATE, **ATTRIBUTION_QUEUE)
    c["window"].change(stride_for_window, c.all(["window", "stride"]), c["stride"], **QUIET)
    display = c.all(["last", "sign", "colormap", "opacity"])
    c["sign"].input(c.answering(choose_sign), display,
                    c.all(["colormap", "overlay", "colour_bar"]), **QUIET)
    for name in ("colormap", "opacity"):
        c[name].input(c.answering(keep_state(redraw)), display, c.all(["overlay", "colour_bar"]),
                      **QUIET)
    c["grid_run"].click(c.answering(run_grid_page), c.all([*GRID_ARGUMENTS, *STATE_ARGUMENTS, "clicked_at"]),
                        c.all(["grid", "grid_summary", "grid_curves"]), js=CLICK_TIME_JS,
                        **PRIVATE, **ATTRIBUTION_QUEUE)
    # One forward pass: quick enough to need no Cancel.
    c["features_run"].click(
        keep_state(feature_maps), c.all(["image", "selection", "weights", "device", "channels"]),
        c["features"], **PRIVATE, **ATTRIBUTION_QUEUE)


def _wire_api(c: _Controls) -> None:
    """The named HTTP endpoints (README, "HTTP API"): same services, errors raised. Hidden
    triggers, so the page's buttons keep their own error handling."""
    with gr.Row(visible=False):
        triggers = {name: gr.Button(visible=False) for name in
                    ("attr_weights", "attribute", "attribute_grid", "feature_maps")}
    triggers["attr_weights"].click(
        c.answering(set_weights),
        c.all(["kind", "seed", "imagenet_name", "checkpoint", "selection", "device"]),
        [c["weights"], c["weights_status"]], api_name="attr_weights", **ATTRIBUTION_QUEUE)
    triggers["attribute"].click(
        c.answering(run_attribution), c.all(ATTRIBUTE_ARGUMENTS + STATE_ARGUMENTS),
        c.all(["overlay", "top5_label", "summary", "deletion", "raw_map", "last"]),
        api_name="attribute", **ATTRIBUTION_QUEUE)
    triggers["attribute_grid"].click(
        c.answering(run_grid), c.all(GRID_ARGUMENTS + STATE_ARGUMENTS),
        c.all(["grid", "grid_summary", "grid_curves"]), api_name="attribute_grid",
        **ATTRIBUTION_QUEUE)
    triggers["feature_maps"].click(
        user_errors(feature_maps), c.all(["image", "selection", "weights", "device", "channels"]),
        c["features"], api_name="feature_maps", **ATTRIBUTION_QUEUE)


def build(ctx: TabContext) -> None:
    controls = _layout(ctx)
    _wire_api(controls)  # first: the endpoints get their names before the page's twins
    _wire_weights(ctx, controls)
    _wire_explain(controls)
    # Queued (so its message reaches the page) but never waiting: no concurrency limit.
    controls["cancel"].click(request_cancel, controls["clicked_at"], None, js=CLICK_TIME_JS,
                             **PRIVATE, show_progress="hidden", concurrency_limit=None)
    ctx.demo.load(lambda: gr.update(choices=device_choices()), None, controls["device"],
                  **PRIVATE, show_progress="hidden")
    ctx.follow_shared_device(controls["device"])
