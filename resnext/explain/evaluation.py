"""Evaluate attribution methods against ground truth, and compare networks by it.

On a test split whose object pixels are known (`resnext.data.shapes(...).test.masks`, with
`.marker_masks` for the shortcut variant and `.distractor_masks` for shapes-distractors),
`evaluate` computes every method's maps for a batch of test images and scores them: energy
in the mask, the pointing game, deletion and insertion AUC, and, where the split marks them,
the share on the shortcut marker and the share on distractors. `sanity_check` runs Adebayo et al.'s
cascading randomization. Everything is plain functions on models, tensors and arrays;
the app's Evaluate tab, the CSV download, the `/evaluate` and `/sanity_check` endpoints
and `python -m resnext.explain` read `EvaluationResult` / `SanityResult` and their `to_json()`.

The metrics, batched attribution and sanity check live in small modules re-exported here.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .batch import (  # noqa: F401  (re-exported)
    BASE_METHODS,
    DEFAULT_ROWS,
    IG_BASELINES,
    METHOD_ROWS,
    REDUCTIONS,
    ROW_LABELS,
    BatchSettings,
    attribute_batch,
    eval_mode,
    private_copy,
    resolve_row,
)
from .baselines import blur_sigma, gaussian_blur, make_baseline  # noqa: F401  (re-exported)
from .metrics import (  # noqa: F401  (re-exported)
    CurveEnds,
    PerturbationCurves,
    curve_ends,
    distractor_share,
    energy_in_mask,
    marker_share,
    perturbation_curves,
    pixel_ranks,
    pointing_game,
    random_baseline,
    widen,
)
from .sanity import (  # noqa: F401  (re-exported)
    DEFAULT_SANITY_ROWS,
    MEASURES,
    SanityResult,
    average_ranks,
    cascade_groups,
    compare_maps,
    randomization_check,
    reinitialise,
    spearman,
    ssim,
    topk_overlap,
)

from .names import (  # noqa: E402,F401
    ALL_METRICS,
    HIGHER_IS_BETTER,
    MASKED_METRICS,
    METRIC_LABELS,
    METRICS,
    TARGETS,
)
from .stopping import StopCheck, Stopped


class ProgressCounter:
    """Turns the steps of an evaluation into one fraction for a progress bar."""

    def __init__(self, total: int, callback: Callable[[dict[str, Any]], None] | None) -> None:
        self.total = max(1, total)
        self.done = 0
        self.callback = callback
        self.start = time.perf_counter()

    def advance(self, amount: int = 1, **info: Any) -> None:
        self.done += amount
        if self.callback is not None:
            self.callback({"kind": info.pop("kind", "step"), "done": self.done,
                           "total": self.total, "fraction": min(self.done / self.total, 1.0),
                           "seconds": time.perf_counter() - self.start, **info})

    def finish(self, seconds: float, complete: bool) -> None:
        """The last event: the whole work is over (complete, or stopped early)."""
        if self.callback is not None:
            self.callback({"kind": "done", "done": self.total, "total": self.total,
                           "fraction": 1.0, "seconds": seconds, "complete": complete})


@dataclass
class EvalBatch:
    """The evaluated test images, in dataset order."""

    indices: np.ndarray  # (N,) positions in the test split
    images: torch.Tensor  # (N, 3, H, W) normalised
    labels: torch.Tensor  # (N,)
    masks: torch.Tensor  # (N, H, W) bool, the object
    marker_masks: torch.Tensor | None  # (N, H, W) bool, the shortcut marker, if any
    distractor_masks: torch.Tensor | None = None  # (N, H, W) bool, the distractors, if any


def load_test_batch(dataset_test: Any, n_images: int, mean: Sequence[float],
                    std: Sequence[float]) -> EvalBatch:
    """The first `n_images` of a test split with masks, normalised by mean/std."""
    from ..validation import whole_number

    masks = getattr(dataset_test, "masks", None)
    if masks is None:
        raise ValueError("this test split has no object masks: evaluation needs a dataset "
                         "with ground truth (e.g. shapes)")
    available = len(dataset_test)
    count = whole_number("number of test images", n_images, 1, 100_000)
    count = min(count, available)
    if hasattr(dataset_test, "batch"):  # resnext.data's splits slice a whole batch at once
        images, labels = dataset_test.batch(torch.arange(count))
        images, labels = images.float(), torch.as_tensor(labels, dtype=torch.long)
    else:
        items = [dataset_test[i] for i in range(count)]
        images = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image, _ in items])
        labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    extra = {}
    for attribute in MASKED_METRICS.values():  # the marker's, the distractors' (if any)
        found = getattr(dataset_test, attribute, None)
        extra[attribute] = None if found is None else torch.as_tensor(found[:count]).bool()
    return EvalBatch(
        indices=np.arange(count), images=(images - mean_t) / std_t, labels=labels,
        masks=torch.as_tensor(masks[:count]).bool(), **extra)


@dataclass
class MethodScores:
    """One method's per-image scores (arrays of length N, in the batch's order)."""

    method: str
    energy: np.ndarray
    pointing: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    marker_share: np.ndarray | None
    seconds: float  # attribution alone (maps), wall clock
    curves: PerturbationCurves | None = None
    maps: np.ndarray | None = None  # (N, H, W) float32, kept for best/worst views
    distractor_share: np.ndarray | None = None  # on a split with distractor masks only

    def values(self, metric: str) -> np.ndarray:
        if metric not in ALL_METRICS:
            raise ValueError(f"metric must be one of {', '.join(ALL_METRICS)}, got {metric!r}")
        value = getattr(self, metric)
        if value is None:
            missing = {"marker_share": "shortcut marker", "distractor_share": "distractor masks"}
            raise ValueError(f"this test split has no {missing[metric]}: no "
                             f"{METRIC_LABELS[metric].split(' (')[0]}")
        return value

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"method": self.method, "label": ROW_LABELS.get(self.method, self.method)}
        for metric in ALL_METRICS:
            value = getattr(self, metric)
            if value is not None:
                row[metric] = float(np.mean(value))
        row["seconds"] = self.seconds
        return row

    def sem(self, metric: str) -> float:
        """Standard error of the mean over images (for error bars)."""
        value = self.values(metric)
        return float(np.std(value, ddof=1) / math.sqrt(len(value))) if len(value) > 1 else 0.0


@dataclass
class EvaluationResult:
    methods: list[MethodScores]
    indices: np.ndarray  # (N,) test-split positions of the evaluated images
    labels: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,)
    targets: np.ndarray  # (N,) the class each map explains
    mask_share: np.ndarray  # (N,) the object's share of the image (random energy)
    pointing_random: np.ndarray  # (N,) the widened mask's share (random pointing)
    marker_random: np.ndarray | None  # (N,) the marker's share of the image
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    complete: bool = True
    # What was evaluated, for the JSON: a trained run's folder name and its dataset's name
    # (the app's /evaluate and `python -m resnext.explain` set both; None otherwise).
    run_id: str | None = None
    dataset: str | None = None
    distractor_random: np.ndarray | None = None  # (N,) the distractors' share of the image

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else math.nan

    @property
    def has_marker(self) -> bool:
        return self.marker_random is not None

    @property
    def has_distractors(self) -> bool:
        return self.distractor_random is not None

    @property
    def metrics(self) -> list[str]:
        """The metrics this result reports, in `ALL_METRICS`' order: the marker share only
        on a split with a marker, the distractor share only on one with distractors."""
        has = {"marker_share": self.has_marker, "distractor_share": self.has_distractors}
        return [m for m in ALL_METRICS if has.get(m, True)]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The table: one dict per method with the mean of each metric over the images."""
        return [scores.row() for scores in self.methods]

    def scores(self, method: str) -> MethodScores:
        for scores in self.methods:
            if scores.method == method:
                return scores
        raise ValueError(f"no method {method!r} in this evaluation; it has "
                         f"{', '.join(s.method for s in self.methods)}")

    def random_line(self, metric: str) -> float | None:
        """What a map without information scores on `metric`: the mask's share of the image
        for energy, pointing, marker and distractor share; the random-map row's AUC if it
        was run."""
        shares = {"energy": self.mask_share, "pointing": self.pointing_random,
                  "marker_share": self.marker_random, "distractor_share": self.distractor_random}
        if metric in shares:
            return None if shares[metric] is None else float(shares[metric].mean())
        for scores in self.methods:
            if scores.method == "random":
                return float(np.mean(scores.values(metric)))
        return None

    def best_worst(self, method: str, metric: str, k: int = 3) -> dict[str, list[int]]:
        """Test-split indices of the k best and k worst images for a method by a metric
        ("best" respects the metric's direction; ties keep the dataset order)."""
        values = self.scores(method).values(metric)
        order = np.argsort(values if not HIGHER_IS_BETTER[metric] else -values, kind="stable")
        k = max(0, min(k, len(order)))
        return {"best": [int(self.indices[i]) for i in order[:k]],
                "worst": [int(self.indices[i]) for i in order[::-1][:k]]}

    def to_csv(self) -> str:
        """The table as CSV text (one row per method, plus the random-map reference)."""
        columns = ["method", "label"] + self.metrics
        columns += ["seconds", "n_images"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()},
                             "n_images": len(self.indices)})
        reference = {"method": "reference", "label": "random map (mask's share)",
                     "n_images": len(self.indices)}
        for metric in columns:
            if metric in ALL_METRICS:
                line = self.random_line(metric)
                reference[metric] = "" if line is None else f"{line:.6g}"
        writer.writerow(reference)
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """The numbers of the `/evaluate` endpoint and of `python -m resnext.explain --json`:
        plain JSON types, NaN as null."""
        def clean(value: Any) -> Any:
            if isinstance(value, float):
                return None if not math.isfinite(value) else round(value, 6)
            return value

        rows = []
        for scores in self.methods:
            row = {key: clean(value) for key, value in scores.row().items()}
            row["sem"] = {metric: clean(scores.sem(metric)) for metric in ALL_METRICS
                          if getattr(scores, metric) is not None}
            row["reduction"] = REDUCTIONS.get(resolve_row(scores.method)[0], "")
            rows.append(row)
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "n_images": int(len(self.indices)),
            "accuracy": clean(self.accuracy),
            "complete": self.complete,
            "seconds": clean(round(self.seconds, 3)),
            "metrics": self.metrics,
            "rows": rows,
            "random": {metric: clean(self.random_line(metric)) for metric in self.metrics},
            "settings": self.settings,
        }


def prepare_model(model: torch.nn.Module, channels_last: bool = True) -> torch.nn.Module:
    """A private eval-mode copy to attribute on (`private_copy`: no hooks carried over):
    Captum's hooks and a memory-format change never touch the caller's (possibly shared,
    cached) model; hold the model's lock while this copies. channels-last: oneDNN's
    convolutions ran 1.3-1.6x faster in that layout on this CPU for batches of 16+."""
    twin = private_copy(model).eval()
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    if channels_last:
        twin = twin.to(memory_format=torch.channels_last)
    return twin


def _predict(model: torch.nn.Module, images: torch.Tensor, max_batch: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(images[i:i + max_batch]).argmax(dim=1)
                          for i in range(0, images.shape[0], max_batch)])


@dataclass(frozen=True)
class _Plan:
    """An evaluation's choices, checked once."""

    methods: tuple[str, ...]
    target: str
    steps: int
    tolerance: int
    max_batch: int
    settings: BatchSettings

    @classmethod
    def checked(cls, methods: Sequence[str], target: str, steps: Any, tolerance: Any,
                max_batch: Any, settings: BatchSettings | None) -> "_Plan":
        from ..validation import whole_number

        methods = tuple(dict.fromkeys(methods))
        if not methods:
            raise ValueError("choose at least one method")
        for method in methods:
            resolve_row(method)
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        return cls(methods, target, whole_number("deletion/insertion steps", steps, 2, 200),
                   whole_number("pointing tolerance", tolerance, 0, 1000),
                   whole_number("batch size", max_batch, 1, 4096),
                   (settings or BatchSettings()).checked())

    @property
    def sigma(self) -> float | None:
        """The blur's sigma when the settings name one (None: the library's rule)."""
        return self.settings.blur_sigma or None

    def described(self, count: int, height: int, width: int, seed: int) -> dict[str, Any]:
        """The settings as the result (and its JSON) reports them."""
        s = self.settings
        return {"n_images": count, "target": self.target, "steps": self.steps,
                "tolerance": self.tolerance,
                "deletion_fill": "dataset mean (0 after normalisation)",
                "insertion_start": "Gaussian blur, sigma = "
                                   f"{self.sigma or blur_sigma(height, width):g} px",
                "n_steps": s.n_steps, "n_samples": s.n_samples, "noise_level": s.noise_level,
                "seed": seed}


def _statistics(mean: Sequence[float] | None, std: Sequence[float] | None
                ) -> tuple[Sequence[float], Sequence[float]]:
    if mean is None or std is None:
        raise ValueError("mean and std: give the per-channel mean and std the network was "
                         "trained with (a run's dataset's)")
    return mean, std


def _score(net: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, batch: EvalBatch,
           method: str, plan: _Plan, statistics: tuple[Sequence[float], Sequence[float]],
           seed: int, ends: CurveEnds, keep_maps: bool, progress: ProgressCounter,
           should_stop: StopCheck) -> MethodScores:
    """One method's maps of the batch and their scores (raises `Stopped` when told to)."""
    mean, std = statistics
    began = time.perf_counter()
    maps = attribute_batch(net, images, targets, method, settings=plan.settings, mean=mean,
                           std=std, max_batch=plan.max_batch, seed=seed, should_stop=should_stop)
    seconds = time.perf_counter() - began
    progress.advance(kind="maps", method=method)
    curves = perturbation_curves(net, images, maps, targets, steps=plan.steps,
                                 blur_sigma=plan.sigma, max_batch=plan.max_batch, seed=seed,
                                 ends=ends, should_stop=should_stop)
    progress.advance(kind="curves", method=method)
    markers, distractors = batch.marker_masks, batch.distractor_masks
    return MethodScores(
        method=method, energy=energy_in_mask(maps, batch.masks),
        pointing=pointing_game(maps, batch.masks, plan.tolerance),
        deletion_auc=curves.deletion_auc, insertion_auc=curves.insertion_auc,
        marker_share=None if markers is None else marker_share(maps, markers),
        distractor_share=None if distractors is None else distractor_share(maps, distractors),
        seconds=seconds, curves=curves,
        maps=maps.numpy().astype(np.float32) if keep_maps else None)


def evaluate_batch(model: torch.nn.Module, batch: EvalBatch,
                   methods: Sequence[str] = DEFAULT_ROWS, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None, target: str = "label", *,
                   settings: BatchSettings | None = None, steps: int = 10,
                   tolerance: int = 0, max_batch: int = 64, seed: int = 0,
                   channels_last: bool = True, keep_maps: bool = True,
                   run_id: str | None = None, dataset: str | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None,
                   should_stop: StopCheck = None) -> EvaluationResult:
    """`evaluate` on a prepared `EvalBatch` (see there)."""
    start = time.perf_counter()
    plan = _Plan.checked(methods, target, steps, tolerance, max_batch, settings)
    statistics = _statistics(mean, std)
    net = prepare_model(model, channels_last)
    images = (batch.images.contiguous(memory_format=torch.channels_last) if channels_last
              else batch.images)
    predictions = _predict(net, images, plan.max_batch)
    targets = batch.labels if plan.target == "label" else predictions
    ends = curve_ends(net, images, targets, blur_sigma=plan.sigma, max_batch=plan.max_batch)
    # Progress in image-passes: maps, then curves (2 * (steps + 1) forwards per image).
    progress = ProgressCounter(len(plan.methods) * 2, on_progress)
    results: list[MethodScores] = []
    complete = True
    try:
        for method in plan.methods:
            results.append(_score(net, images, targets, batch, method, plan, statistics, seed,
                                  ends, keep_maps, progress, should_stop))
    except Stopped:
        complete = False
    result = EvaluationResult(
        methods=results, indices=batch.indices, labels=batch.labels.numpy(),
        predictions=predictions.cpu().numpy(), targets=targets.cpu().numpy(),
        mask_share=random_baseline(batch.masks),
        pointing_random=random_baseline(batch.masks, plan.tolerance),
        marker_random=None if batch.marker_masks is None else random_baseline(batch.marker_masks),
        distractor_random=(None if batch.distractor_masks is None
                           else random_baseline(batch.distractor_masks)),
        settings=plan.described(images.shape[0], *images.shape[-2:], seed),
        seconds=time.perf_counter() - start, complete=complete, run_id=run_id, dataset=dataset)
    progress.finish(result.seconds, complete)
    return result


def evaluate(model: torch.nn.Module, dataset_test: Any, methods: Sequence[str] = DEFAULT_ROWS,
             n_images: int = 200, mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None, target: str = "label", *,
             settings: BatchSettings | None = None, steps: int = 10, tolerance: int = 0,
             max_batch: int = 64, seed: int = 0, channels_last: bool = True,
             keep_maps: bool = True, run_id: str | None = None, dataset: str | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None,
             should_stop: StopCheck = None) -> EvaluationResult:
    """Score each method's maps on the first `n_images` of a test split with masks.

    dataset_test: items (image (3, H, W) in [0, 1], label) and `.masks` (N, H, W) bool
    (optionally `.marker_masks`, `.distractor_masks`); mean/std: the training set's per-channel normalisation
    (required; positional or by name). methods: row names (`METHOD_ROWS`; default the eight
    methods, Integrated Gradients with its black, blurred and mean baselines as three rows;
    add "random" for a random-map row). target: explain the true "label" (default, as the
    pointing game does) or the "predicted" class. steps: deletion/insertion curve points - 1.
    tolerance: pointing game, pixels. run_id/dataset: what `to_json()` says was evaluated.
    The model is not modified (a private copy is attributed). `on_progress(event)` gets
    dicts with `fraction`; `should_stop()` ends early with the finished methods and
    `complete=False`.
    """
    mean, std = _statistics(mean, std)
    batch = load_test_batch(dataset_test, n_images, mean, std)
    return evaluate_batch(model, batch, methods, mean, std, target, settings=settings,
                          steps=steps, tolerance=tolerance, max_batch=max_batch, seed=seed,
                          channels_last=channels_last, keep_maps=keep_maps, run_id=run_id,
                          dataset=dataset, on_progress=on_progress, should_stop=should_stop)


def sanity_check(model: torch.nn.Module, dataset_test: Any,
                 methods: Sequence[Any] = DEFAULT_SANITY_ROWS, n_images: int = 50,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 target: str = "label", *, settings: BatchSettings | None = None,
                 topk: float = 0.1, max_batch: int = 64, seed: int = 0,
                 channels_last: bool = True,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 should_stop: StopCheck = None) -> SanityResult:
    """The cascading randomization check on the first `n_images` of a test split (the data
    behind `/sanity_check`); arguments as `evaluate`'s. The model is not modified."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    mean, std = _statistics(mean, std)
    batch = load_test_batch(dataset_test, n_images, mean, std)
    net = prepare_model(model, channels_last)
    images = (batch.images.contiguous(memory_format=torch.channels_last) if channels_last
              else batch.images)
    targets = batch.labels if target == "label" else _predict(net, images, max_batch)
    return randomization_check(net, images, targets, methods, mean=mean, std=std,
                               settings=settings, topk=topk, max_batch=max_batch, seed=seed,
                               on_progress=on_progress, should_stop=should_stop)
