"""One attribution request from the controls' values to what the page shows.

The Attributions tab and its HTTP endpoints hand the controls' values here; this module
builds the request once (`ExplainRequest`: validated settings, display, weights, network),
runs one path for a single map and for a grid of maps (memory check -> cached model ->
image -> forward, Captum, deletion curve -> overlay), and returns plain results. It also
holds the tab's memory policy and writes the raw map for download.
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

import resnext
from resnext.explain import single as attribution
from resnext.explain.single import AttributionSettings
from resnext.explain.stopping import StopCheck, stop_if_asked
from resnext.validation import whole_number

from ..selection import Selection, default_selection
from ..shared import drawing, predictions
from ..shared.devices import resolve_device
from ..shared.drawing import Display
from ..shared.images import PreparedImage, prepare_image
from ..shared.memory import check_budget, memory_plan
from ..shared.models import MODEL_CACHE, CachedModel, WeightsChoice
from ..shared.predictions import top_html
from ..shared.weights_choice import RANDOM_NOTE, Network, network_for, weights_for_preset
from . import figures

# The order of the HTTP API's arguments (README, "HTTP API"), defined once: the tab builds
# each endpoint's inputs from these names, so the page and the API cannot drift apart.
SETTING_FIELDS = ("n_steps", "baseline", "internal_batch_size", "n_samples", "noise_level",
                  "smoothgrad_over", "window", "stride", "layer")
DISPLAY_FIELDS = ("sign", "colormap", "opacity")
ATTRIBUTE_ARGUMENTS = ("image", "method", "target", *SETTING_FIELDS, "device", *DISPLAY_FIELDS)
GRID_ARGUMENTS = ("image", "mode", "methods", "compare_preset", *ATTRIBUTE_ARGUMENTS[1:])
GRID_MODES = {"methods": "Several methods on this image", "configs": "One method on two configs"}
DEFAULT_GRID_METHODS = ("gradcam", "saliency", "integrated_gradients")
DEFAULT_COMPARE_PRESET = "resnet50"  # the grid's second config: ResNet-50, cardinality 1
CANCELLED_MESSAGE = "Cancelled: the attribution was stopped. Earlier results are kept."
# Gradients about double what a forward pass keeps (activations are saved for backward).
BACKWARD_MEMORY_FACTOR = 2
MAPS_DIR = Path(tempfile.gettempdir()) / "resnext-explorer-maps"

Progress = Callable[..., None]


def _no_progress(*args: Any, **kwargs: Any) -> None:
    return None


# Requests ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExplainRequest:
    """Everything one Explain needs, validated once."""

    image: Any
    settings: AttributionSettings
    target: Any
    display: Display
    device: str
    selection: Selection
    weights: WeightsChoice

    @classmethod
    def from_values(cls, values: Mapping[str, Any], selection: Any, weights: Any
                    ) -> "ExplainRequest":
        """From the controls' values by name (ATTRIBUTE_ARGUMENTS) and the session's state."""
        settings = {name: values[name] for name in SETTING_FIELDS}
        settings["layer"] = settings["layer"] or ""
        return cls(
            image=values["image"],
            settings=AttributionSettings(method=values["method"], **settings).checked(),
            target=values["target"],
            display=Display(*(values[name] for name in DISPLAY_FIELDS)).checked(),
            device=resolve_device(values["device"]).key,
            selection=selection if isinstance(selection, Selection) else default_selection(),
            weights=weights if isinstance(weights, WeightsChoice) else WeightsChoice())

    @property
    def network(self) -> Network:
        return network_for(self.weights, self.selection)


@dataclass(frozen=True)
class GridRequest:
    """A grid: several methods on one image, or one method on this network and a preset."""

    base: ExplainRequest
    mode: str
    methods: tuple[str, ...] = ()
    compare_preset: str = DEFAULT_COMPARE_PRESET

    @classmethod
    def from_values(cls, values: Mapping[str, Any], selection: Any, weights: Any
                    ) -> "GridRequest":
        mode = values["mode"]
        if mode not in GRID_MODES:
            raise ValueError(f"Grid must be one of {', '.join(GRID_MODES)}, got {mode!r}")
        methods = tuple(m for m in (values["methods"] or []) if m)
        if mode == "methods":
            if not methods:
                raise ValueError("Methods: tick at least one method for the grid")
            unknown = [m for m in methods if m not in attribution.METHODS]
            if unknown:
                raise ValueError(f"Methods: unknown {unknown}; choose from "
                                 f"{', '.join(attribution.METHODS)}")
        preset = values["compare_preset"]
        if mode == "configs" and preset not in resnext.PRESETS:
            raise ValueError(f"Second config: one of {', '.join(resnext.PRESETS)}, got {preset!r}")
        return cls(ExplainRequest.from_values(values, selection, weights), mode, methods, preset)


@dataclass(frozen=True)
class _Job:
    """One map of a request: which method on which network, and how to name it."""

    settings: AttributionSettings
    weights: WeightsChoice
    selection: Selection
    label: str


# Results -------------------------------------------------------------------------------------

@dataclass
class Explanation:
    """One map and what is drawn from it."""

    overlay: np.ndarray  # (H·f, W·f, 3) uint8: the map over the centre crop (drawing.overlay_view)
    top: list[tuple[int, str, float]]  # (index, name, probability) of the top 5
    summary: str  # Markdown
    figure: Any  # plotly deletion curve
    map_path: str  # the raw map as .npy
    shown: np.ndarray  # the centre crop the network saw
    pixel_map: np.ndarray  # (H, W)
    display: Display
    mask: np.ndarray | None = None  # (H, W) bool: the object's pixels (a run's shapes sample)

    @property
    def top_label(self) -> dict[str, float]:
        """{name: probability} for a gr.Label (the API's top-5)."""
        names = [name for _, name, _ in self.top]
        # ImageNet repeats a few names ("crane", "maillot"): keep the label keys distinct.
        return {(f"{name} (#{index})" if names.count(name) > 1 else name): prob
                for index, name, prob in self.top}

    @property
    def top_html(self) -> str:
        return top_html(self.top)

    @property
    def colour_bar(self) -> str:
        return figures.colour_bar_html(self.pixel_map, self.display)

    @property
    def redraw_state(self) -> dict:
        """What the display controls redraw from, without recomputing."""
        return {"image": self.shown, "map": self.pixel_map, "mask": self.mask}


@dataclass
class _JobResult:
    """What one job found, for the summary or the grid's row."""

    explanation: Explanation
    attribution: attribution.Attribution
    curve: attribution.DeletionCurve
    probability: float  # of the target class
    target: int
    target_name: str
    network: Network
    method: str  # the method's name as people read it
    prepared: PreparedImage


@dataclass
class GridResult:
    gallery: list[tuple[np.ndarray, str]]
    table: str  # Markdown
    figure: Any
    explanations: list[Explanation] = field(default_factory=list)


# Running -------------------------------------------------------------------------------------

def model_entry(weights: WeightsChoice, selection: Selection, device: str, images: int = 1
                ) -> tuple[CachedModel, Network]:
    """The cached model for a job, after checking its memory fits the budget.

    `images` is how many images one forward-and-backward pass holds (the internal batch of
    IG, GradientShap, SmoothGrad).
    """
    network = network_for(weights, selection)
    info = resolve_device(device)
    check_budget(memory_plan(network.config, network.image_size,
                             BACKWARD_MEMORY_FACTOR * images, "float32", info),
                 f"Attributing {network.config.name} at {network.image_size}×"
                 f"{network.image_size} with {images} image(s) per pass")
    return MODEL_CACHE.get(network.config, weights, info.key), network


def save_map(values: np.ndarray, method: str) -> str:
    """The raw map (C, H, W) as a float32 .npy file for download; its path."""
    MAPS_DIR.mkdir(exist_ok=True)
    handle, path = tempfile.mkstemp(prefix=f"{method}-", suffix=".npy", dir=MAPS_DIR)
    with open(handle, "wb") as out:
        np.save(out, values.astype(np.float32))
    return path


class _Slice:
    """Maps a phase's 0..1 onto a slice of the progress bar."""

    def __init__(self, progress: Progress, start: float, end: float, desc: str) -> None:
        self.progress, self.start, self.end, self.desc = progress, start, end, desc

    def __call__(self, fraction: float) -> None:
        self.progress(self.start + (self.end - self.start) * fraction, desc=self.desc)


def _run_job(job: _Job, request: ExplainRequest, images: dict[tuple, PreparedImage],
             progress: Progress, should_stop: StopCheck) -> _JobResult:
    """Memory check, model, image, then forward, attribution, deletion curve and overlay."""
    import torch

    entry, network = model_entry(job.weights, job.selection, request.device,
                                 job.settings.internal_batch_size)
    preprocessing = network.preprocessing
    key = (preprocessing, tuple(network.samples))
    if key not in images:  # one decode per preprocessing
        images[key] = prepare_image(request.image, preprocessing, network.samples)
    prepared = images[key]
    names = network.class_names
    method = attribution.METHODS[job.settings.method]
    with entry.lock:  # Captum hooks the model's modules: one user at a time per model
        model = entry.model
        x = prepared.tensor.to(next(model.parameters()).device)
        with torch.inference_mode():
            logits = model(x)  # (1, K)
        top = predictions.top_predictions(logits, names)
        target = figures.resolve_target(request.target, names, top[0][0])
        result = attribution.attribute(model, x, target, job.settings,
                                       report=_Slice(progress, 0.05, 0.85, f"{job.label}: {method}"),
                                       should_stop=should_stop, mean=preprocessing.mean,
                                       std=preprocessing.std)
        stop_if_asked(should_stop)  # Cancel during the last forward: no deletion curve
        progress(0.9, desc=f"{job.label}: deletion curve")
        curve = attribution.deletion_curve(model, x, result.pixel_map, target,
                                           batch_size=job.settings.internal_batch_size)
        probability = float(torch.softmax(logits.float(), dim=1)[0, target])
    overlay = drawing.overlay_view(prepared.shown, result.pixel_map, request.display,
                                       prepared.mask)
    explanation = Explanation(overlay, top, "", None, "", prepared.shown, result.pixel_map,
                              request.display, prepared.mask)
    return _JobResult(explanation, result, curve, probability, target, names[target], network,
                      method, prepared)


def explain(request: ExplainRequest, progress: Progress | None = None,
            should_stop: StopCheck = None) -> Explanation:
    """One map on the image (the Explain button, /attribute); `should_stop()` asked before
    every forward pass (`resnext.explain.Stopped` when it says stop)."""
    start = time.perf_counter()
    progress = progress or _no_progress
    progress(0.0, desc="loading the model")
    network = request.network
    job = _Job(request.settings, request.weights, request.selection, network.config.name)
    found = _run_job(job, request, {}, progress, should_stop)
    explanation = found.explanation
    explanation.summary = _summary(request, found, time.perf_counter() - start)
    explanation.figure = figures.deletion_figure([(found.method, found.curve)])
    explanation.map_path = save_map(found.attribution.values, request.settings.method)
    return explanation


def _summary(request: ExplainRequest, found: _JobResult, elapsed: float) -> str:
    result, network = found.attribution, found.network
    side = network.image_size
    lines = [f"**{found.method}** for **{html.escape(found.target_name)}** "
             f"(class {found.target}, p = {found.probability:.3g}) · "
             f"{html.escape(network.config.name)}, {html.escape(request.weights.label)}"]
    if found.prepared.cut:
        lines.append(f"- The map covers the {side}×{side} centre crop the network sees "
                     f"(outlined on the photo below the image box), not the whole photo.")
    else:
        lines.append(f"- The map covers the whole image, as the network sees it at "
                     f"{side}×{side}.")
    if found.prepared.mask is not None:
        lines.append(object_line(result.pixel_map, found.prepared.mask))
    lines.append(f"- Faithfulness: deletion-curve AUC **{found.curve.auc:.3g}** "
                 f"(probability of the target as the most attributed pixels are removed; "
                 f"lower = the map found what the model uses)")
    if result.convergence_delta is not None:
        lines.append(f"- Convergence delta **{result.convergence_delta:+.2e}**: sum of "
                     f"attributions − (f(x) − f(baseline)); near 0 means the map accounts for "
                     f"the whole change in the logit")
    lines.append(f"- Attribution {result.seconds:.2f} s; whole request {elapsed:.2f} s")
    if not request.weights.trained:
        lines.append(f"\n{RANDOM_NOTE}")
    return "\n".join(lines)


def object_share(pixel_map: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(share of the map's positive attribution inside the object, the object's share of the
    image): the Evaluate tab's energy-in-mask, and what a map blind to the object scores."""
    from resnext.explain.metrics import energy_in_mask, random_baseline

    return (float(energy_in_mask(pixel_map, mask)[0]),
            float(random_baseline(mask.astype(bool))[0]))


def object_line(pixel_map: np.ndarray, mask: np.ndarray) -> str:
    """The summary's line on the object outlined over the map (a run's shapes sample)."""
    inside, area = object_share(pixel_map, mask)
    if not (pixel_map > 0).any():
        return ("- Object outlined in cyan (the dataset's mask); the map has no positive "
                "attribution, so none of it falls inside the object.")
    return (f"- Object outlined in cyan (the dataset's mask): **{100 * inside:.0f} %** of the "
            f"positive attribution lies inside it; the object is {100 * area:.0f} % of the "
            f"image, what a map blind to it would score (the Evaluate tab's energy in mask).")


def _grid_jobs(grid: GridRequest) -> list[_Job]:
    base = grid.base
    own_name = base.network.config.name
    if grid.mode == "methods":
        return [_Job(AttributionSettings(**{**base.settings.__dict__, "method": m}).checked(),
                     base.weights, base.selection, own_name) for m in grid.methods]
    other, note = weights_for_preset(base.weights, grid.compare_preset)
    other_selection = Selection(resnext.PRESETS[grid.compare_preset], base.selection.image_size)
    # A Grad-CAM layer named for this network may not exist in the other: its last stage.
    other_settings = AttributionSettings(**{**base.settings.__dict__, "layer": ""})
    return [_Job(base.settings, base.weights, base.selection, own_name),
            _Job(other_settings, other, other_selection, f"{grid.compare_preset} · {note}")]


def explain_grid(grid: GridRequest, progress: Progress | None = None,
                 should_stop: StopCheck = None) -> GridResult:
    """Maps side by side (/attribute_grid): gallery items, a Markdown table, the curves."""
    start = time.perf_counter()
    progress = progress or _no_progress
    jobs = _grid_jobs(grid)
    images: dict[tuple, PreparedImage] = {}
    gallery, curves, rows, explanations = [], [], [], []
    for index, job in enumerate(jobs):
        def stage(fraction: float, desc: str = "", _index: int = index) -> None:
            progress((_index + fraction) / len(jobs), desc=desc)

        found = _run_job(job, grid.base, images, stage, should_stop)
        explanations.append(found.explanation)
        result, curve, name = found.attribution, found.curve, found.target_name
        gallery.append((found.explanation.overlay,
                        f"{job.label}: {found.method} · {name} · AUC {curve.auc:.3g}"))
        curves.append((job.label if grid.mode == "configs" else found.method, curve))
        delta = "" if result.convergence_delta is None else f"{result.convergence_delta:+.1e}"
        rows.append(f"| {html.escape(job.label)} | {found.method} | {html.escape(name)} "
                    f"({found.probability:.3g}) | {curve.auc:.3g} | {delta} | "
                    f"{result.seconds:.2f} s |")
    table = ("| model | method | target (p) | deletion AUC | convergence δ | time |\n"
             "|---|---|---|---|---|---|\n" + "\n".join(rows)
             + f"\n\nWhole request {time.perf_counter() - start:.2f} s.")
    if not grid.base.weights.trained:
        table += f"\n\n{RANDOM_NOTE}"
    return GridResult(gallery, table, figures.deletion_figure(curves), explanations)


def stage_features(image: Any, selection: Any, weights: Any, device: str, channels: Any
                   ) -> list[tuple[np.ndarray, str]]:
    """Each stage's strongest channels for the image (/feature_maps): gallery items."""
    limit = figures.CHANNELS
    channels = whole_number(limit.label, channels, int(limit.low), int(limit.high))
    selection = selection if isinstance(selection, Selection) else default_selection()
    weights = weights if isinstance(weights, WeightsChoice) else WeightsChoice()
    entry, network = model_entry(weights, selection, resolve_device(device).key)
    prepared = prepare_image(image, network.preprocessing)
    with entry.lock:
        model = entry.model
        x = prepared.tensor.to(next(model.parameters()).device)
        grids = figures.feature_map_grids(model, x, channels=channels)
    return [(grid.image, grid.caption) for grid in grids]


def redraw(state: Any, display: Display) -> tuple[np.ndarray, str] | None:
    """The overlay and colour bar again with other display settings (no recomputation);
    None when there is no map yet."""
    display = display.checked()
    if not isinstance(state, dict) or "map" not in state:
        return None
    overlay = drawing.overlay_view(state["image"], state["map"], display, state.get("mask"))
    return overlay, figures.colour_bar_html(state["map"], display)

