"""The Evaluate tab's glue: which runs can be evaluated, their models and test splits (a
small cache), evaluations and sanity checks with progress and a stop flag, runs compared,
and the best and worst images of a method by a metric.

The measuring is `resnext.explain`'s (`evaluate`, `sanity_check`), the charts `figures`'; this module
turns a run id and the tab's control values into those calls, and their results into the
table, gallery and download the page shows. Only runs on a dataset whose test split knows
every object pixel (the data registry's `masks`: shapes, shapes-shortcut) can be evaluated.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from resnext.data.registry import DATASETS
from resnext.train import runs
from resnext.validation import whole_number

from resnext.explain import names
from resnext.explain.stopping import StopCheck
from ..shared.downloads import write_download
from ..shared.plots import TEXT_GREY
from ..shared.drawing import draw_outline, enlarge, render_overlay, to_uint8

if TYPE_CHECKING:  # annotations only: the module imports torch and Captum
    from resnext.explain import evaluation as ev


METRICS = names.METRICS


def sanity_chart(result: "ev.SanityResult", measure: str = "spearman"):
    """The randomization curves of a sanity check (one line per method)."""
    return _figures().sanity_figure(result, measure)


def _evaluation():
    """`resnext.explain.evaluation` (torch, Captum), imported on first use: the tab's
    controls are built from `resnext.explain.names` at start-up without it."""
    from resnext.explain import evaluation

    return evaluation


def _figures():
    """The charts of the results (they import the library's result types: torch)."""
    from . import figures

    return figures

# Limits of the tab's controls, defined once: the controls are built from them and every
# value (page or API) is checked against them under the control's name.
N_IMAGES_LABEL = "Test images"
N_IMAGES_RANGE = (1, 1000)
N_IMAGES_DEFAULT = 200  # the default: 200 test images per method
SANITY_IMAGES_LABEL = "Sanity-check images"
SANITY_IMAGES_RANGE = (1, 500)
# The cascade recomputes every map once per re-initialised stage (5 times on a 3-stage
# net), so it gets fewer images than the evaluation by default.
SANITY_IMAGES_DEFAULT = 50
EXAMPLES_LABEL = "Images each (best / worst)"
EXAMPLES_RANGE = (1, 12)
EXAMPLES_DEFAULT = 4
TARGET_CHOICES = [("true label", "label"), ("predicted class", "predicted")]
DEFAULT_TARGET = "label"
# The page's method choices: the evaluation rows, the random-map reference last (it gives
# deletion and insertion AUC their "random" line; energy and pointing need no run for it).
METHOD_CHOICES = [(names.ROW_LABELS[name], name) for name in names.METHOD_ROWS]
DEFAULT_METHODS = list(names.DEFAULT_ROWS) + ["random"]
METRIC_CHOICES = [(names.METRIC_LABELS[m], m) for m in names.METRICS]
MEASURE_CHOICES = [("Spearman rank correlation", "spearman"), ("SSIM", "ssim"),
                   ("top-10 % overlap", "topk")]
STOPPED_NOTE = "Stopped: the methods finished before Stop are shown."
OBJECT_COLOUR = (255, 255, 0)  # yellow, as the Train tab's preview outlines objects
MARKER_COLOUR = (0, 255, 255)  # cyan: the shortcut marker
EXAMPLE_SIDE = 128  # px: 32-px test images enlarged for the gallery
REFERENCE_COLOUR = "#f97316"  # the random-map line: orange reads on light and dark pages
REFERENCE_ROW = "reference (no information)"


# Which runs ---------------------------------------------------------------------------------

# The run list's note: which runs it offers (the datasets with masks, from the registry).
RUN_INFO = "finished or stopped runs on " + " / ".join(
    name for name, entry in DATASETS.items() if entry.masks)


def evaluable_runs(manager: Any) -> list[str]:
    """Ids of runs that can be evaluated: usable (`runs.usable`: finished or stopped, with
    saved weights) and trained on a dataset whose test split has masks. Newest first."""
    return [record.run_id for record in runs.list_runs(manager.runs_dir)
            if runs.usable(record, manager.runs_dir, masks=True)]


def run_folder(runs_dir: Path, run_id: Any) -> Path:
    """The folder of an evaluable run, or a ValueError that says why it is not one."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValueError("Run: choose a trained run first (the Train tab makes one)")
    try:
        return runs.usable_run(runs_dir, run_id, masks=True)
    except ValueError as error:
        raise ValueError(f"Run: {error}") from None


@dataclass
class LoadedRun:
    """A run's model and its test split (the training split is not kept)."""

    run_id: str
    network: str
    dataset: str
    image_size: int
    classes: tuple[str, ...]
    model: Any  # torch.nn.Module in eval mode; never hooked (evaluation attributes a copy)
    test: Any  # resnext.data ImageTensors with .masks (and .marker_masks)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    accuracy: float | None  # the run's own test accuracy (metrics.jsonl, whole test split)
    key: tuple = ()

    @property
    def comparable_key(self) -> tuple:
        """Runs compare when their task is the same: classes and image size (shapes and
        shapes-shortcut share them; each run is scored on its own test split)."""
        return (self.classes, self.image_size)

    def describe(self) -> str:
        accuracy = "" if self.accuracy is None else f", test accuracy {self.accuracy:.1%}"
        return (f"**{self.run_id}**: {self.network} on {self.dataset} "
                f"({self.image_size} px, {len(self.test)} test images{accuracy})")


class RunCache:
    """The last few runs loaded (model + regenerated test split), shared by all sessions:
    read-only once loaded, so sharing is safe; the lock keeps two loads of one run apart."""

    def __init__(self, capacity: int = 2) -> None:
        self._runs: OrderedDict[tuple, LoadedRun] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def load(self, runs_dir: Path, run_id: Any) -> LoadedRun:
        folder = run_folder(runs_dir, run_id)
        stat = runs.model_file(folder).stat()
        key = (str(folder.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
            loaded = _load_run(folder, key)
            self._runs[key] = loaded
            while len(self._runs) > self._capacity:
                self._runs.popitem(last=False)
            return loaded


def _load_run(folder: Path, key: tuple) -> LoadedRun:
    from resnext import data as datasets
    from resnext.train import load_run

    cfg, model, meta = load_run(folder)
    pair = datasets.from_spec(meta["data"])
    metrics = meta.get("metrics") or {}
    return LoadedRun(
        run_id=folder.name, network=cfg.name, dataset=pair.name, image_size=pair.image_size,
        classes=tuple(pair.classes), model=model, test=pair.test,
        mean=tuple(float(v) for v in pair.mean), std=tuple(float(v) for v in pair.std),
        accuracy=metrics.get("test_accuracy"), key=key)


RUNS = RunCache()


# Requests -----------------------------------------------------------------------------------

def checked_methods(methods: Any) -> list[str]:
    """Method rows from a list (or a comma-separated string, for API callers)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError("Methods: choose at least one method")
    unknown = [m for m in methods if m not in names.METHOD_ROWS]
    if unknown:
        raise ValueError(f"Methods: unknown {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(names.METHOD_ROWS)}")
    return list(dict.fromkeys(methods))


def checked_target(target: Any) -> str:
    if target not in names.TARGETS:
        raise ValueError(f"Target: must be one of {', '.join(names.TARGETS)}, got {target!r}")
    return target


@dataclass
class Evaluation:
    """One run's evaluation as a session keeps it: the result (maps included), the images
    it scored (for the best/worst gallery) and what was asked."""

    run: str
    description: str
    network: str
    dataset: str
    classes: tuple[str, ...]
    result: ev.EvaluationResult
    images: np.ndarray  # (N, H, W, 3) uint8, the evaluated test images
    masks: np.ndarray  # (N, H, W) bool
    marker_masks: np.ndarray | None
    request: tuple = ()  # (model key, methods, n_images, target): same request, same result
    comparable_key: tuple = ()

    def to_json(self) -> dict[str, Any]:
        """The library's JSON (it names the run and its dataset): /evaluate's answer."""
        return self.result.to_json()


Progress = Callable[[float, str], None]


def run_evaluation(runs_dir: Path, run_id: Any, methods: Any, n_images: Any, target: Any, *,
                   progress: Progress | None = None, should_stop: StopCheck = None,
                   keep_maps: bool = True, cache: RunCache = RUNS) -> Evaluation:
    """Evaluate a run's network on the first `n_images` of its test split (`should_stop()`
    asked between chunks: the methods finished are kept)."""
    methods = checked_methods(methods)
    n_images = whole_number(N_IMAGES_LABEL, n_images, *N_IMAGES_RANGE)
    target = checked_target(target)
    loaded = cache.load(runs_dir, run_id)
    report = progress or (lambda fraction, desc: None)
    report(0.0, f"loading {loaded.run_id}")

    def on_progress(event: dict[str, Any]) -> None:
        method = names.ROW_LABELS.get(event.get("method", ""), "")
        step = {"maps": "maps done", "curves": "deletion/insertion done"}.get(event["kind"], "")
        report(float(event["fraction"]), f"{method}: {step}" if method else "evaluating")

    result = _evaluation().evaluate(
        loaded.model, loaded.test, methods, n_images, loaded.mean, loaded.std, target,
        keep_maps=keep_maps, run_id=loaded.run_id, dataset=loaded.dataset,
        on_progress=on_progress, should_stop=should_stop)
    count = len(result.indices)
    test = loaded.test
    markers = getattr(test, "marker_masks", None)
    return Evaluation(
        run=loaded.run_id, description=loaded.describe(), network=loaded.network,
        dataset=loaded.dataset,
        classes=loaded.classes, result=result,
        images=np.stack([to_uint8(test.images[i]) for i in range(count)]),
        masks=np.asarray(test.masks[:count], dtype=bool),
        marker_masks=None if markers is None else np.asarray(markers[:count], dtype=bool),
        request=(loaded.key, tuple(methods), n_images, target),
        comparable_key=loaded.comparable_key)


def run_sanity(runs_dir: Path, run_id: Any, methods: Any, n_images: Any, *,
               progress: Progress | None = None, should_stop: StopCheck = None,
               cache: RunCache = RUNS) -> ev.SanityResult:
    """The cascading randomization check of a run's network (Adebayo et al. 2018)."""
    methods = [m for m in checked_methods(methods) if m != "random"]
    if not methods:
        raise ValueError("Methods: the sanity check needs at least one method besides the "
                         "random map")
    n_images = whole_number(SANITY_IMAGES_LABEL, n_images, *SANITY_IMAGES_RANGE)
    loaded = cache.load(runs_dir, run_id)
    report = progress or (lambda fraction, desc: None)

    def on_progress(event: dict[str, Any]) -> None:
        report(float(event["fraction"]), f"re-initialised down to {event.get('step', '')}")

    return _evaluation().sanity_check(loaded.model, loaded.test, methods, n_images, loaded.mean,
                                      loaded.std, on_progress=on_progress,
                                      should_stop=should_stop)


def sanity_note(result: ev.SanityResult) -> str:
    """The line under the randomization chart: what was run, how to read it."""
    note = (f"{result.n_images} test images, {len(result.curves)} methods, "
            f"{result.seconds:.1f} s. 1 = the trained network's maps; a curve that stays "
            f"high while the weights are destroyed does not depend on them.")
    return note + (f" **{STOPPED_NOTE}**" if not result.complete else "")


# What the page shows ------------------------------------------------------------------------

def shown_metrics(result: ev.EvaluationResult) -> list[str]:
    return [m for m in names.METRICS if m != "marker_share" or result.has_marker]


def table_headers(result: ev.EvaluationResult | None) -> list[str]:
    metrics = list(names.METRICS) if result is None else shown_metrics(result)
    return ["method"] + [names.METRIC_LABELS[m] for m in metrics] + ["maps (s)"]


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def table_rows(result: ev.EvaluationResult) -> list[list[Any]]:
    """One row per method: each metric's mean over the images (3 decimals), then the
    random-map reference row (what a map without information scores)."""
    metrics = shown_metrics(result)
    rows = [[row["label"]] + [_rounded(row.get(m)) for m in metrics] + [_rounded(row["seconds"], 2)]
            for row in result.rows]
    rows.append([REFERENCE_ROW] + [_rounded(result.random_line(m)) for m in metrics]
                + [None])
    return rows


def summary(evaluation: Evaluation) -> str:
    result = evaluation.result
    done = len(result.methods)
    lines = [f"{evaluation.description}. Evaluated {len(result.indices)} test images "
             f"(explaining the {'true label' if result.settings.get('target') == 'label' else 'predicted class'}); "
             f"accuracy on them {result.accuracy:.1%}; {result.seconds:.1f} s."]
    if not result.complete:
        lines.append(f"**{STOPPED_NOTE}** ({done} method{'s' if done != 1 else ''}).")
    lines.append("The last row is what a map without information scores: the object's "
                 "share of the image for energy and pointing, the random-map run (when "
                 "chosen) for the AUCs.")
    return "\n\n".join(lines)


def _fit_for_a_column(figure: Any, metric: str, line: float | None) -> Any:
    """`metric_figure` for a half-width column, readable on light and dark pages: a short
    title with the random map's value under it (not over the bars), the dashed line and
    error bars in colours that show on both backgrounds."""
    subtitle = ("" if line is None else
                f"<br><sup>dashed: a random map, {line:.3f}</sup>")
    figure.update_layout(title={"text": names.METRIC_LABELS[metric] + subtitle}, margin={"t": 64})
    figure.layout.annotations = ()
    for shape in figure.layout.shapes or ():
        shape.line.color = REFERENCE_COLOUR
    return _short_ticks(figure)


def _short_ticks(figure: Any) -> Any:
    """Method names that fit under a bar ("IG (blurred)"), grey error bars."""
    for trace in figure.data:
        trace.x = [str(x).replace("Integrated Gradients", "IG") for x in trace.x]
    figure.update_traces(error_y={"color": TEXT_GREY})
    return figure


def metric_figures(result: ev.EvaluationResult) -> dict[str, Any]:
    """metric -> figure (None for the marker share on a split without a marker)."""
    return {m: (_fit_for_a_column(_figures().metric_figure(result, m), m, result.random_line(m))
                if m in shown_metrics(result) else None)
            for m in names.METRICS}


def csv_download(evaluation: Evaluation) -> str:
    """The table as a CSV file (path), one row per method plus the reference row."""
    return str(write_download(evaluation.result.to_csv(), f"evaluation-{evaluation.run}", ".csv"))


def evaluated_methods(evaluation: Evaluation | None) -> list[tuple[str, str]]:
    if evaluation is None:
        return []
    return [(names.ROW_LABELS.get(s.method, s.method), s.method) for s in evaluation.result.methods]


def method_of_row(evaluation: Evaluation | None, row_index: Any) -> str | None:
    """The method of a clicked table row (None for the reference row or no evaluation)."""
    if evaluation is None or not isinstance(row_index, int):
        return None
    methods = evaluation.result.methods
    return methods[row_index].method if 0 <= row_index < len(methods) else None


def examples(evaluation: Evaluation | None, method: Any, metric: Any, k: Any
             ) -> tuple[list[tuple[np.ndarray, str]], list[tuple[np.ndarray, str]]]:
    """The k best and k worst images of a method by a metric: its map over the image
    (positive part, inferno), the object outlined yellow and the marker cyan."""
    if evaluation is None:
        raise ValueError("Evaluate a run first: the best and worst images come from its maps")
    k = whole_number(EXAMPLES_LABEL, k, *EXAMPLES_RANGE)
    result = evaluation.result
    if metric not in shown_metrics(result):
        raise ValueError(f"Metric: choose one of {', '.join(shown_metrics(result))}, got {metric!r}")
    scores = result.scores(method) if isinstance(method, str) else result.scores(str(method))
    if scores.maps is None:
        raise ValueError("this evaluation kept no maps")
    values = scores.values(metric)
    picked = result.best_worst(method, metric, k)
    position = {int(index): i for i, index in enumerate(result.indices)}

    def tile(index: int) -> tuple[np.ndarray, str]:
        i = position[index]
        image = render_overlay(evaluation.images[i], scores.maps[i], "positive", "inferno", 0.6)
        image = enlarge(image, EXAMPLE_SIDE)
        factor = image.shape[0] // evaluation.images.shape[1]
        mask = evaluation.masks[i].repeat(factor, 0).repeat(factor, 1)
        image = draw_outline(image, mask, OBJECT_COLOUR)
        if evaluation.marker_masks is not None:
            marker = evaluation.marker_masks[i].repeat(factor, 0).repeat(factor, 1)
            image = draw_outline(image, marker, MARKER_COLOUR)
        label = evaluation.classes[int(result.labels[i])]
        predicted = evaluation.classes[int(result.predictions[i])]
        # Short: four captions share a half-width row.
        return image, f"{values[i]:.3f} · {label}" + ("" if label == predicted else f"→{predicted}")

    return ([tile(index) for index in picked["best"]], [tile(index) for index in picked["worst"]])


# Compare runs -------------------------------------------------------------------------------

COMPARE_HEADERS_FIXED = ["method", "run", "accuracy"]


@dataclass
class Comparison:
    evaluations: list[Evaluation] = field(default_factory=list)

    def results(self) -> dict[str, ev.EvaluationResult]:
        return {e.run: e.result for e in self.evaluations}

    @property
    def has_marker(self) -> bool:
        return any(e.result.has_marker for e in self.evaluations)

    def metrics(self) -> list[str]:
        return [m for m in names.METRICS if m != "marker_share" or self.has_marker]

    def headers(self) -> list[str]:
        return COMPARE_HEADERS_FIXED + [names.METRIC_LABELS[m] for m in self.metrics()]

    def rows(self) -> list[list[Any]]:
        """Method by method, each run beside the others (3 decimals)."""
        methods = list(dict.fromkeys(s.method for e in self.evaluations for s in e.result.methods))
        rows = []
        for method in methods:
            for evaluation in self.evaluations:
                result = evaluation.result
                try:
                    scores = result.scores(method)
                except ValueError:
                    continue
                row = scores.row()
                rows.append([names.ROW_LABELS.get(method, method), evaluation.run,
                             _rounded(result.accuracy)]
                            + [_rounded(row.get(m)) for m in self.metrics()])
        return rows

    def to_json(self) -> dict[str, Any]:
        return {"runs": [e.to_json() for e in self.evaluations]}


def compare_runs(runs_dir: Path, run_ids: Any, methods: Any, n_images: Any, target: Any, *,
                 reuse: Sequence[Evaluation | None] = (), progress: Progress | None = None,
                 should_stop: StopCheck = None, cache: RunCache = RUNS) -> Comparison:
    """Evaluate two or more runs on the same task with the same settings. An evaluation in
    `reuse` made with the same request (same weights, methods, images, target) is reused."""
    if isinstance(run_ids, str):
        run_ids = [run_ids]
    run_ids = list(dict.fromkeys(run_ids or []))
    if len(run_ids) < 2:
        raise ValueError("Runs to compare: choose two or more runs")
    methods = checked_methods(methods)
    n_images = whole_number(N_IMAGES_LABEL, n_images, *N_IMAGES_RANGE)
    target = checked_target(target)
    loaded = [cache.load(runs_dir, run_id) for run_id in run_ids]
    keys = {run.comparable_key for run in loaded}
    if len(keys) > 1:
        described = "; ".join(f"{run.run_id}: {run.dataset}, {run.image_size} px, "
                              f"{len(run.classes)} classes" for run in loaded)
        raise ValueError(f"Runs to compare: they must be trained on the same dataset (same "
                         f"classes and image size); got {described}")
    report = progress or (lambda fraction, desc: None)
    comparison = Comparison()
    for position, run in enumerate(loaded):
        request = (run.key, tuple(methods), n_images, target)
        reused = next((e for e in reuse if e is not None and e.request == request
                       and e.result.complete), None)
        if reused is None:
            def part(fraction: float, desc: str, position: int = position) -> None:
                report((position + fraction) / len(loaded), f"{loaded[position].run_id}: {desc}")

            reused = run_evaluation(runs_dir, run.run_id, methods, n_images, target,
                                    progress=part, should_stop=should_stop, keep_maps=False,
                                    cache=cache)
        comparison.evaluations.append(reused)
        if not reused.result.complete:
            break
    return comparison


def compare_chart(comparison: Comparison, metric: Any) -> Any:
    """`compare_figure` of the runs by a metric (the first one shown if `metric` is not)."""
    metric = metric if metric in comparison.metrics() else comparison.metrics()[0]
    figure = _short_ticks(_figures().compare_figure(comparison.results(), metric))
    # The legend (one entry per run) above the bars: below, it collides with slanted ticks.
    return figure.update_layout(legend={"orientation": "h", "y": 1.0, "yanchor": "bottom",
                                        "x": 0, "xanchor": "left"}, margin={"t": 80})


def compare_note(comparison: Comparison) -> str:
    evaluations = comparison.evaluations
    parts = [f"**{e.run}** ({e.network} on {e.dataset}): accuracy {e.result.accuracy:.1%} "
             f"on {len(e.result.indices)} images" for e in evaluations]
    note = "; ".join(parts) + "."
    if any(not e.result.complete for e in evaluations):
        note += f" **{STOPPED_NOTE}**"
    datasets = {e.dataset for e in evaluations}
    if len(datasets) > 1:
        note += (" Each run is scored on its own test split (" + " and ".join(sorted(datasets))
                 + "): same classes and image size, different images.")
    return note


def describe_run(runs_dir: Path, run_id: Any) -> str:
    """A line on a run from its folder (nothing loaded): network, dataset, accuracy."""
    folder = run_folder(runs_dir, run_id)
    record = runs.read_run(folder)
    accuracy = "" if record.test_accuracy is None else f", test accuracy {record.test_accuracy:.1%}"
    return (f"**{record.run_id}**: {record.network} on {record.dataset}, "
            f"{record.epochs_done}/{record.epochs} epochs{accuracy} ({record.state})")
