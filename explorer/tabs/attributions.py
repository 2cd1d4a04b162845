"""Attributions tab: the weights panel, an image, a Captum method and what it says: overlay,
top-5, deletion curve, convergence delta; a grid of methods or of two configs; feature maps."""

from __future__ import annotations

import html
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

import resnext

from ..context import TabContext
from ..errors import user_errors
from ..selection import Selection, default_selection
from ..services import attribution as service
from ..services.devices import device_choices, initial_choices, resolve_device
from ..services.memory import check_budget, memory_plan
from resnext.validation import whole_number
from .shared import follow_shared_device
from ..services.images import prepare_image, sample_images
from ..services.models import IMAGENET, MODEL_CACHE, RANDOM, UPLOAD, WeightsChoice
from ..services.weights_choice import KIND_LABELS, RANDOM_NOTE, choose_weights, describe, model_for

_MAPS_DIR = Path(tempfile.gettempdir()) / "resnext-explorer-maps"
# One queue for everything that builds or runs a model here: attributions on a 2-core CPU
# are seconds to minutes each, and running two at once only makes both slower.
ATTRIBUTION_QUEUE = dict(concurrency_id="attribution", concurrency_limit=1)
GRID_MODES = [("Several methods on this image", "methods"),
              ("One method on two configs", "configs")]


def uploaded_image(**kwargs: Any) -> gr.Image:
    """A gr.Image whose handler gets the uploaded file as is.

    gr.Image opens the file itself before the handler runs, so a corrupt or non-image
    upload would fail there with Gradio's message; here `resnext.load_image` decodes it
    (EXIF, 16-bit, CMYK, size checked before decoding) and says plainly what is wrong.
    (An instance override, not a subclass: Gradio writes a .pyi file next to the source
    of every Component subclass when it is defined.)
    """
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    component.preprocess = lambda payload: None if payload is None else payload.path
    return component


# Cancellation ----------------------------------------------------------------------------
# Gradio's `cancels=` stops waiting for a running handler but cannot stop its thread; the
# Cancel button also sets this per-session flag, which the model's forward hook checks.

class _CancelFlags:
    def __init__(self, capacity: int = 1024) -> None:
        self._flags: OrderedDict[str, threading.Event] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags.pop(session, None) or threading.Event()
            flag.clear()
            self._flags[session] = flag
            while len(self._flags) > self._capacity:
                self._flags.popitem(last=False)
            return flag

    def cancel(self, session: str) -> bool:
        with self._lock:
            flag = self._flags.get(session)
        if flag is None:
            return False
        flag.set()
        return True


CANCEL_FLAGS = _CancelFlags()


def _quiet(progress: Any) -> Any:
    """Gradio's progress tracker, or a no-op when a handler is called directly."""
    return progress if progress is not None else (lambda *args, **kwargs: None)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "no-session"


# Helpers ---------------------------------------------------------------------------------

def _settings(method: str, n_steps: Any, baseline: str, internal_batch_size: Any,
              n_samples: Any, noise_level: Any, smoothgrad_over: str, window: Any, stride: Any,
              layer: str | None) -> service.AttributionSettings:
    return service.AttributionSettings(
        method=method, n_steps=n_steps, baseline=baseline,
        internal_batch_size=internal_batch_size, n_samples=n_samples,
        noise_level=float(noise_level) if noise_level is not None else 0.15,
        smoothgrad_over=smoothgrad_over, window=window, stride=stride,
        layer=(layer or "").strip()).checked()


def _state(selection: Any, weights: Any) -> tuple[Selection, WeightsChoice]:
    return (selection if isinstance(selection, Selection) else default_selection(),
            weights if isinstance(weights, WeightsChoice) else WeightsChoice())


def _label_value(top: list[tuple[int, str, float]]) -> dict[str, float]:
    names = [name for _, name, _ in top]
    # ImageNet repeats a few names ("crane", "maillot"): keep the label keys distinct.
    return {(f"{name} (#{index})" if names.count(name) > 1 else name): prob
            for index, name, prob in top}


def _save_map(values: np.ndarray, method: str) -> str:
    _MAPS_DIR.mkdir(exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=f"{method}-", suffix=".npy", dir=_MAPS_DIR)
    with open(handle, "wb") as out:
        np.save(out, values.astype(np.float32))
    return path


class _Progress:
    """Maps a phase's 0..1 onto a slice of Gradio's progress bar."""

    def __init__(self, progress: Any, start: float, end: float, desc: str) -> None:
        self.progress, self.start, self.end, self.desc = progress, start, end, desc

    def __call__(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress(self.start + (self.end - self.start) * fraction, desc=self.desc)


def _explain(entry: Any, image: Any, settings: service.AttributionSettings, target_choice: Any,
             class_names: tuple[str, ...], progress: Any, cancel: threading.Event,
             label: str) -> dict:
    """Forward, attribution, deletion curve on one cached model, holding its lock."""
    import torch

    with entry.lock:
        model = entry.model
        device = next(model.parameters()).device
        x = image.tensor.to(device)
        with torch.inference_mode():
            logits = model(x)  # (1, K)
        top = service.top_predictions(logits, class_names)
        target = service.resolve_target(target_choice, class_names, top[0][0])
        attribution = service.attribute(
            model, x, target, settings,
            report=_Progress(progress, 0.05, 0.85, f"{label}: {service.METHODS[settings.method]}"),
            cancel=cancel)
        if cancel.is_set():
            raise service.AttributionCancelled("cancelled")
        if progress is not None:
            progress(0.9, desc=f"{label}: deletion curve")
        curve = service.deletion_curve(model, x, attribution.pixel_map, target,
                                       batch_size=settings.internal_batch_size)
        probability = float(torch.softmax(logits.float(), dim=1)[0, target])
    return dict(top=top, target=target, attribution=attribution, curve=curve,
                probability=probability)


def _summary(result: dict, class_names: tuple[str, ...], weights: WeightsChoice, config_name: str,
             elapsed: float) -> str:
    attribution = result["attribution"]
    target = result["target"]
    lines = [f"**{service.METHODS[attribution.method]}** for **{html.escape(class_names[target])}** "
             f"(class {target}, p = {result['probability']:.3g}) · {html.escape(config_name)}, "
             f"{html.escape(weights.label)}",
             f"- Faithfulness: deletion-curve AUC **{result['curve'].auc:.3g}** "
             f"(probability of the target as the most attributed pixels are removed; lower = "
             f"the map found what the model uses)"]
    if attribution.convergence_delta is not None:
        lines.append(f"- Convergence delta **{attribution.convergence_delta:+.2e}**: sum of "
                     f"attributions − (f(x) − f(baseline)); near 0 means the map accounts for "
                     f"the whole change in the logit")
    lines.append(f"- Attribution {attribution.seconds:.2f} s; whole request {elapsed:.2f} s")
    if not weights.trained:
        lines.append(f"\n{RANDOM_NOTE}")
    return "\n".join(lines)


def _model_entry(weights: WeightsChoice, selection: Selection, device: str, images: int = 1):
    """The cached model for a request, after checking its memory fits the budget.

    `images` is how many images one forward-and-backward pass holds (the internal batch of
    IG, GradientShap, SmoothGrad); gradients about double what the forward keeps, hence 2x.
    """
    config, size, preprocess_with = model_for(weights, selection)
    info = resolve_device(device)
    check_budget(memory_plan(config, size, 2 * images, "float32", info),
                 f"Attributing {config.name} at {size}×{size} with {images} image(s) per pass")
    entry = MODEL_CACHE.get(config, weights, info.key)
    return entry, config, size, preprocess_with


def _cancelled_message() -> gr.Error:
    return gr.Error("Cancelled: the attribution was stopped.", print_exception=False)


# Handlers --------------------------------------------------------------------------------

@user_errors
def set_weights(kind: str, seed: float, imagenet_name: str, checkpoint: Any, selection: Any,
                device: str, progress=gr.Progress(track_tqdm=True)):
    """Load and check a weights choice (API: /attr_weights); it becomes the session's weights."""
    selection, _ = _state(selection, None)
    _quiet(progress)(0.1, desc="loading weights")
    choice = choose_weights(kind, seed, imagenet_name, checkpoint, selection,
                            resolve_device(device).key)
    return choice, describe(choice, selection)


@user_errors
def run_attribution(image: Any, method: str, target: Any, n_steps: float, baseline: str,
                    internal_batch_size: float, n_samples: float, noise_level: float,
                    smoothgrad_over: str, window: float, stride: float, layer: str, device: str,
                    sign: str, colormap: str, opacity: float, selection: Any, weights: Any,
                    request: gr.Request = None, progress=gr.Progress()):
    """One map on the uploaded image (API: /attribute): overlay, top-5, summary, deletion
    curve, the raw map as .npy, and the state the overlay controls redraw from."""
    start = time.perf_counter()
    progress = _quiet(progress)
    cancel = CANCEL_FLAGS.fresh(_session(request))
    selection, weights = _state(selection, weights)
    settings = _settings(method, n_steps, baseline, internal_batch_size, n_samples, noise_level,
                         smoothgrad_over, window, stride, layer)
    progress(0.0, desc="loading the model")
    entry, config, size, preprocess_with = _model_entry(weights, selection, device,
                                                        settings.internal_batch_size)
    prepared = prepare_image(image, preprocess_with, size)
    class_names = service.class_names_for(config.num_classes)
    try:
        result = _explain(entry, prepared, settings, target, class_names, progress, cancel,
                          config.name)
    except service.AttributionCancelled:
        raise _cancelled_message() from None
    attribution = result["attribution"]
    overlay = service.render_overlay(prepared.shown, attribution.pixel_map, sign, colormap, opacity)
    elapsed = time.perf_counter() - start
    figure = service.deletion_figure([(service.METHODS[method], result["curve"])])
    return (overlay, _label_value(result["top"]),
            _summary(result, class_names, weights, config.name, elapsed), figure,
            _save_map(attribution.values, method),
            {"image": prepared.shown, "map": attribution.pixel_map})


@user_errors
def redraw(last: Any, sign: str, colormap: str, opacity: float):
    """The overlay again with other display settings (no recomputation)."""
    if not isinstance(last, dict) or "map" not in last:
        return gr.update()
    return service.render_overlay(last["image"], last["map"], sign, colormap, opacity)


def _compare_weights(weights: WeightsChoice, preset: str) -> tuple[WeightsChoice, str]:
    """Weights for the second config of a comparison, and a note on what was chosen."""
    if weights.kind == IMAGENET:
        version = weights.name.rsplit("_", 1)[-1]
        candidates = [n for n, w in resnext.PUBLISHED_WEIGHTS.items() if w.preset == preset]
        same = [n for n in candidates if n.endswith(version)]
        if same or candidates:
            name = (same or candidates)[0]
            return WeightsChoice(kind=IMAGENET, name=name), name
        return WeightsChoice(kind=RANDOM), f"random (seed 0): torchvision has no {preset} weights"
    if weights.kind == UPLOAD:
        return WeightsChoice(kind=RANDOM), "random (seed 0): the checkpoint fits the first config only"
    return weights, weights.label


@user_errors
def run_grid(image: Any, mode: str, methods: list[str] | None, compare_preset: str, method: str,
             target: Any, n_steps: float, baseline: str, internal_batch_size: float,
             n_samples: float, noise_level: float, smoothgrad_over: str, window: float,
             stride: float, layer: str, device: str, sign: str, colormap: str, opacity: float,
             selection: Any, weights: Any, request: gr.Request = None, progress=gr.Progress()):
    """Maps side by side (API: /attribute_grid): several methods on one image, or one method
    on the current config and a preset. Returns gallery items, a summary and the curves."""
    start = time.perf_counter()
    progress = _quiet(progress)
    cancel = CANCEL_FLAGS.fresh(_session(request))
    selection, weights = _state(selection, weights)
    if mode == "methods":
        chosen = [m for m in (methods or []) if m]
        if not chosen:
            raise ValueError("pick at least one method for the grid")
        unknown = [m for m in chosen if m not in service.METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(service.METHODS)}")
        model_name = model_for(weights, selection)[0].name
        jobs = [(m, weights, None, model_name) for m in chosen]
    elif mode == "configs":
        if compare_preset not in resnext.PRESETS:
            raise ValueError(f"compare with one of {', '.join(resnext.PRESETS)}, got {compare_preset!r}")
        other, note = _compare_weights(weights, compare_preset)
        jobs = [(method, weights, None, model_for(weights, selection)[0].name),
                (method, other, compare_preset, f"{compare_preset} · {note}")]
    else:
        raise ValueError(f"grid mode must be 'methods' or 'configs', got {mode!r}")

    gallery, curves, lines = [], [], []
    # One decode per eval transform: in methods mode every job shares the same image.
    prepared_by_transform: dict[tuple, Any] = {}
    for index, (job_method, job_weights, preset, label) in enumerate(jobs):
        job_selection = (Selection(resnext.PRESETS[preset], selection.image_size)
                         if preset else selection)
        settings = _settings(job_method, n_steps, baseline, internal_batch_size, n_samples,
                             noise_level, smoothgrad_over, window, stride,
                             layer if preset is None else "")
        entry, config, size, preprocess_with = _model_entry(job_weights, job_selection, device,
                                                            settings.internal_batch_size)
        transform = (preprocess_with, size)
        if transform not in prepared_by_transform:
            prepared_by_transform[transform] = prepare_image(image, preprocess_with, size)
        prepared = prepared_by_transform[transform]
        class_names = service.class_names_for(config.num_classes)
        stage = _GridProgress(progress, index, len(jobs))
        try:
            result = _explain(entry, prepared, settings, target, class_names, stage, cancel, label)
        except service.AttributionCancelled:
            raise _cancelled_message() from None
        attribution = result["attribution"]
        overlay = service.render_overlay(prepared.shown, attribution.pixel_map, sign, colormap,
                                         opacity)
        name = class_names[result["target"]]
        caption = (f"{label}: {service.METHODS[job_method]} · {name} · "
                   f"AUC {result['curve'].auc:.3g}")
        gallery.append((overlay, caption))
        curves.append((label if mode == "configs" else service.METHODS[job_method], result["curve"]))
        delta = ("" if attribution.convergence_delta is None
                 else f"{attribution.convergence_delta:+.1e}")
        lines.append(f"| {html.escape(label)} | {service.METHODS[job_method]} | "
                     f"{html.escape(name)} ({result['probability']:.3g}) | "
                     f"{result['curve'].auc:.3g} | {delta} | {attribution.seconds:.2f} s |")
    table = ("| model | method | target (p) | deletion AUC | convergence δ | time |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(lines)
             + f"\n\nWhole request {time.perf_counter() - start:.2f} s.")
    if not weights.trained:
        table += f"\n\n{RANDOM_NOTE}"
    return gallery, table, service.deletion_figure(curves)


class _GridProgress:
    def __init__(self, progress: Any, index: int, total: int) -> None:
        self.progress, self.index, self.total = progress, index, total

    def __call__(self, fraction: float, desc: str = "") -> None:
        self.progress((self.index + fraction) / self.total, desc=desc)


@user_errors
def feature_maps(image: Any, selection: Any, weights: Any, device: str, channels: float = 8):
    """Each stage's strongest channels for the image (API: /feature_maps): gallery items."""
    selection, weights = _state(selection, weights)
    channels = whole_number("channels per stage", channels, 1, 32)  # before building anything
    entry, config, size, preprocess_with = _model_entry(weights, selection, device)
    prepared = prepare_image(image, preprocess_with, size)
    with entry.lock:
        model = entry.model
        x = prepared.tensor.to(next(model.parameters()).device)
        grids = service.feature_map_grids(model, x, channels=channels)
    return [(grid.image, grid.caption) for grid in grids]


def request_cancel(request: gr.Request = None) -> None:
    CANCEL_FLAGS.cancel(_session(request))
    gr.Info("Cancelling: the model stops at its next forward pass.")


@user_errors
def pickers_for(selection: Any, weights: Any):
    """Grad-CAM layers and target classes for the model the weights imply."""
    selection, weights = _state(selection, weights)
    config, _, _ = model_for(weights, selection)
    layers = service.layer_choices(config)
    return (gr.update(choices=[("last stage (default)", "")] + [(n, n) for n in layers], value=""),
            gr.update(choices=service.target_choices(config.num_classes), value="predicted class"))


def show_weight_inputs(kind: str):
    return (gr.update(visible=kind == RANDOM), gr.update(visible=kind == IMAGENET),
            gr.update(visible=kind == UPLOAD))


# Layout ----------------------------------------------------------------------------------

def build(ctx: TabContext) -> None:
    initial = default_selection()
    default_device = ctx.options.default_device
    samples = [str(p) for p in sample_images()]
    last = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            with gr.Accordion("Weights", open=True):
                kind = gr.Radio(KIND_LABELS, value=RANDOM, label="Weights",
                                info="shared with the Run tab")
                seed = gr.Number(0, precision=0, minimum=0, label="Seed", visible=True)
                imagenet_name = gr.Dropdown(list(resnext.PUBLISHED_WEIGHTS),
                                            value="resnext50_32x4d.IMAGENET1K_V2",
                                            label="torchvision ImageNet weights", visible=False,
                                            info="from torch's hub cache; downloaded if online")
                checkpoint = gr.File(label="Checkpoint (.pth/.pt state_dict, loaded weights_only)",
                                     file_types=[".pth", ".pt"], visible=False, type="filepath")
                apply_weights = gr.Button("Use these weights")
                weights_status = gr.Markdown(describe(WeightsChoice(), initial))
            image = uploaded_image(label="Image", elem_id="attr-image",
                             sources=["upload", "clipboard"], height=260)
            if samples:
                gr.Examples(samples, inputs=image, label="Sample photos (assets/samples)")
            method = gr.Dropdown([(label, key) for key, label in service.METHODS.items()],
                                 value="gradcam", label="Method")
            target = gr.Dropdown(service.target_choices(initial.config.num_classes),
                                 value="predicted class", label="Target class",
                                 info="the predicted class, or any class by name",
                                 filterable=True, allow_custom_value=True)
            with gr.Accordion("Method parameters", open=False):
                layer = gr.Dropdown([("last stage (default)", "")]
                                    + [(n, n) for n in service.layer_choices(initial.config)],
                                    value="", label="Grad-CAM layer (stage or block)")
                n_steps = gr.Slider(2, 200, value=32, step=1, label="IG steps")
                baseline = gr.Radio(list(service.BASELINES), value="black",
                                    label="Baseline (IG, DeepLift, GradientShap, Occlusion)")
                smoothgrad_over = gr.Radio([("saliency", "saliency"),
                                            ("Integrated Gradients", "integrated_gradients")],
                                           value="saliency", label="SmoothGrad over")
                n_samples = gr.Slider(1, 64, value=16, step=1,
                                      label="Samples (SmoothGrad, GradientShap)")
                noise_level = gr.Slider(0.01, 0.5, value=0.15, step=0.01,
                                        label="Noise (share of the input range)")
                with gr.Row():
                    window = gr.Slider(4, 112, value=32, step=1, label="Occlusion window")
                    stride = gr.Slider(2, 112, value=16, step=1, label="Occlusion stride")
                internal_batch_size = gr.Slider(1, 64, value=8, step=1,
                                                label="Internal batch size",
                                                info="images per forward: bounds memory")
            # Filled with every device when the page loads (torch is not imported before).
            device = gr.Dropdown(initial_choices(default_device), value=default_device,
                                 label="Device")
            with gr.Row():
                run = gr.Button("Explain", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
        with gr.Column(scale=2):
            with gr.Row(equal_height=False):
                overlay = gr.Image(label="Attribution overlay", type="numpy", format="png",
                                   interactive=False, height=360, elem_id="attr-overlay")
                top5 = gr.Label(num_top_classes=5, label="Top-5 predictions",
                                elem_id="attr-top5")
            with gr.Row():
                opacity = gr.Slider(0, 1, value=0.65, step=0.05, label="Opacity")
                sign = gr.Radio(list(service.SIGNS), value="positive", label="Sign")
                colormap = gr.Dropdown(list(service.COLORMAPS), value="inferno",
                                       label="Colour map")
            summary = gr.Markdown()
            deletion = gr.Plot(label="Faithfulness")
            raw_map = gr.File(label="Raw map (.npy, channels × height × width)",
                              interactive=False)
            with gr.Accordion("Grid: methods or configs side by side", open=False):
                with gr.Row():
                    grid_mode = gr.Radio(GRID_MODES, value="methods", label="Grid")
                    compare_preset = gr.Dropdown(list(resnext.PRESETS), value="resnet50",
                                                 label="Second config (configs mode)")
                grid_methods = gr.CheckboxGroup(
                    [(label, key) for key, label in service.METHODS.items()],
                    value=["gradcam", "saliency", "integrated_gradients"],
                    label="Methods (methods mode)")
                grid_run = gr.Button("Explain side by side")
                grid = gr.Gallery(label="Maps", columns=3, height="auto", object_fit="contain")
                grid_summary = gr.Markdown()
                grid_curves = gr.Plot(label="Deletion curves")
            with gr.Accordion("Feature maps: what each stage responds to", open=False):
                feature_channels = gr.Slider(1, 32, value=8, step=1, label="Channels per stage")
                features_run = gr.Button("Show feature maps")
                features = gr.Gallery(label="Strongest channels per stage", columns=2,
                                      height="auto", object_fit="contain")

    params = [n_steps, baseline, internal_batch_size, n_samples, noise_level, smoothgrad_over,
              window, stride, layer, device]
    display = [sign, colormap, opacity]
    states = [ctx.selection, ctx.weights]

    kind.change(show_weight_inputs, kind, [seed, imagenet_name, checkpoint],
                api_visibility="private", queue=False)
    weights_event = apply_weights.click(
        set_weights, [kind, seed, imagenet_name, checkpoint, ctx.selection, device],
        [ctx.weights, weights_status], api_name="attr_weights", **ATTRIBUTION_QUEUE)
    weights_event.success(pickers_for, states, [layer, target], api_visibility="private")
    ctx.selection.change(pickers_for, states, [layer, target], api_visibility="private")

    run_event = run.click(
        run_attribution, [image, method, target, *params, *display, *states],
        [overlay, top5, summary, deletion, raw_map, last], api_name="attribute",
        **ATTRIBUTION_QUEUE)
    for control in display:
        control.change(redraw, [last, *display], overlay, api_visibility="private",
                       queue=False, show_progress="hidden")
    grid_event = grid_run.click(
        run_grid, [image, grid_mode, grid_methods, compare_preset, method, target, *params,
                   *display, *states],
        [grid, grid_summary, grid_curves], api_name="attribute_grid", **ATTRIBUTION_QUEUE)
    features_event = features_run.click(
        feature_maps, [image, *states, device, feature_channels], features,
        api_name="feature_maps", **ATTRIBUTION_QUEUE)
    cancel.click(request_cancel, None, None, cancels=[run_event, grid_event, features_event],
                 api_visibility="private", queue=False)
    ctx.demo.load(lambda: gr.update(choices=device_choices()), None, device,
                  api_visibility="private", show_progress="hidden")
    follow_shared_device(ctx, device)
