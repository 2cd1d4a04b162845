"""The randomization sanity check (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018, Sec. 3.1, cascading randomization).

On a copy of the network, re-initialise the weights from the classifier down to the stem,
one stage at a time; after each step, compute every method's maps again and compare them
with the trained network's, image by image:
- Spearman rank correlation of the absolute maps (the paper's Fig. 4 measure);
- SSIM of the absolute maps scaled to [0, 1] (kornia's, Gaussian window, sigma 1.5);
- top-k overlap: the share of the trained map's k % most attributed pixels that are also
  among the randomised map's.
A method whose maps stay similar while the weights are destroyed does not explain the
weights: the paper found Guided Backprop and Guided Grad-CAM insensitive, gradients and
Grad-CAM not.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .batch import ROW_LABELS, BatchSettings, attribute_batch, eval_mode, private_copy
from .metrics import flat_ranks
from .stopping import StopCheck, Stopped, stop_if_asked

MEASURES = ("spearman", "ssim", "topk")
# Rows of the check by default: each base method once (IG with its black baseline).
DEFAULT_SANITY_ROWS = ("saliency", "integrated_gradients_black", "gradient_shap", "deeplift",
                       "smoothgrad", "occlusion", "gradcam", "guided_gradcam")

# A method is a row name of names.METHOD_ROWS, or (name, function) with
# function(model, images, targets) -> maps (N, H, W).
MapFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


# Comparisons -----------------------------------------------------------------------------

def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """(N, P) -> (N, P) float64 ranks 0..P-1 per row, tied values sharing their mean rank
    (the ranks Spearman's coefficient needs when maps hold runs of equal values)."""
    count, pixels = values.shape
    ordered, order = torch.sort(values, dim=1)
    new_run = torch.ones_like(ordered, dtype=torch.bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run = torch.cumsum(new_run.to(torch.int64), dim=1) - 1  # (N, P) run index of each sorted value
    positions = torch.arange(pixels, dtype=torch.float64).expand(count, pixels)
    run_sum = torch.zeros(count, pixels, dtype=torch.float64).scatter_add_(1, run, positions)
    run_len = torch.zeros(count, pixels, dtype=torch.float64).scatter_add_(
        1, run, torch.ones(count, pixels, dtype=torch.float64))
    mean_rank = (run_sum / run_len.clamp_min(1)).gather(1, run)  # (N, P), in sorted order
    ranks = torch.empty(count, pixels, dtype=torch.float64)
    ranks.scatter_(1, order, mean_rank)
    return ranks


def _pair(first: Any, second: Any) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.as_tensor(first, dtype=torch.float64)
    b = torch.as_tensor(second, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps {tuple(a.shape)} and {tuple(b.shape)} differ in shape")
    return a.flatten(1), b.flatten(1)


def spearman(first: Any, second: Any) -> np.ndarray:
    """(N,) Spearman rank correlation of two batches of maps, per image; NaN where either
    map is constant (no ranking to compare)."""
    a, b = _pair(first, second)
    ra = average_ranks(a)
    rb = average_ranks(b)
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    norm = ra.norm(dim=1) * rb.norm(dim=1)
    result = (ra * rb).sum(dim=1) / norm
    return torch.where(norm > 0, result, torch.full_like(result, math.nan)).numpy()


def _unit_scaled(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(peak > 0, maps / peak.clamp_min(1e-30), torch.zeros_like(maps))


def ssim(first: Any, second: Any) -> np.ndarray:
    """(N,) mean SSIM of two batches of non-negative maps, each scaled to [0, 1] by its maximum."""
    from kornia.metrics import ssim as kornia_ssim

    a = _unit_scaled(torch.as_tensor(first, dtype=torch.float32))
    b = _unit_scaled(torch.as_tensor(second, dtype=torch.float32))
    side = min(a.shape[-2:])
    window = min(11, side if side % 2 else side - 1)  # odd, and no wider than the map
    window = max(window, 3) if side >= 3 else 1
    values = kornia_ssim(a[:, None], b[:, None], window, max_val=1.0)  # (N, 1, H, W)
    return values.flatten(1).mean(dim=1).double().numpy()


def topk_overlap(first: Any, second: Any, fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """(N,) share of `first`'s top `fraction` pixels that are also in `second`'s.

    Pixels tied at the k-th value have no order: each map's are put in a random order of
    its own (`flat_ranks`, seeds `seed` and `seed + 1`), so two maps' ties agree as often as
    chance has them. Raster order let both maps pick the same first zeros: two disjoint
    36-pixel blobs in 32x32 maps, zeros elsewhere, scored 0.495 instead of about 0.09, and a
    sparse map (ReLU'd Grad-CAM) looked less changed by randomization than it was. (A map
    with ties at its k-th value scores below 1 against itself, as two random picks would.)
    """
    a, b = _pair(first, second)
    k = max(1, math.ceil(fraction * a.shape[1]))
    top_a = flat_ranks(a, seed) < k  # (N, P)
    top_b = flat_ranks(b, seed + 1) < k
    return ((top_a & top_b).sum(dim=1).to(torch.float64) / k).numpy()


def compare_maps(trained: torch.Tensor, randomised: torch.Tensor, topk: float = 0.1,
                 seed: int = 0) -> dict[str, np.ndarray]:
    """Per-image similarity of absolute maps, as the paper compares them."""
    a, b = trained.abs(), randomised.abs()
    return {"spearman": spearman(a, b), "ssim": ssim(a, b),
            "topk": topk_overlap(a, b, topk, seed)}


# Re-initialisation -----------------------------------------------------------------------

def cascade_groups(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The order in which the cascade re-initialises: classifier, last stage ... first
    stage, stem. A ResNeXt is split by its stages; another module by its top-level children
    that hold parameters, last first."""
    names = getattr(model, "stage_names", None)
    if names:
        head = [("fc", [model.fc])] if hasattr(model, "fc") else []
        stages = [(name, [model.get_submodule(name)]) for name in reversed(names)]
        stem = [m for m in (getattr(model, "conv1", None), getattr(model, "bn1", None)) if m is not None]
        return head + stages + ([("stem", stem)] if stem else [])
    children = [(name, [child]) for name, child in model.named_children()
                if any(True for _ in child.parameters())]
    return list(reversed(children))


def reinitialise(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    """Fresh weights, as `resnext.build_model` draws them: He-normal (fan-out) convs, PyTorch's
    default linear layers, BatchNorm as identity with its running statistics reset."""
    for top in modules:
        for module in top.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                        generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.in_features)
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()


# The check -------------------------------------------------------------------------------

@dataclass
class SanityResult:
    steps: list[str]  # "trained", then the cumulative re-initialisations: "fc", "layer3", ...
    # method -> measure -> one mean over images per step (1.0 at "trained" by definition)
    curves: dict[str, dict[str, list[float]]]
    # method -> measure -> (steps, N) per-image values
    per_image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    n_images: int = 0
    seconds: float = 0.0
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if not math.isfinite(value) else round(float(value), 6)

        return {
            "steps": list(self.steps),
            "n_images": self.n_images,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "measures": list(MEASURES),
            "curves": {method: {measure: [clean(v) for v in values]
                                for measure, values in by_measure.items()}
                       for method, by_measure in self.curves.items()},
            "labels": dict(self.labels),
        }


def _spec(method: Any) -> tuple[str, MapFunction | None]:
    if isinstance(method, str):
        return method, None
    name, function = method
    return str(name), function


class _Cascade:
    """The running state of one check: its methods' reference maps, the curves so far and
    the progress events."""

    def __init__(self, specs: list[tuple[str, MapFunction | None]], count: int, total: int,
                 on_progress: Callable[[dict[str, Any]], None] | None) -> None:
        self.specs, self.total, self.on_progress = specs, total, on_progress
        self.start = time.perf_counter()
        self.done = 0
        self.steps = ["trained"]
        self.reference: dict[str, torch.Tensor] = {}
        self.curves = {name: {measure: [1.0] for measure in MEASURES} for name, _ in specs}
        self.per_image = {name: {measure: [np.ones(count)] for measure in MEASURES}
                          for name, _ in specs}

    def report(self, step: str) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress({"kind": "sanity", "step": step, "done": self.done,
                              "total": self.total, "fraction": self.done / self.total,
                              "seconds": time.perf_counter() - self.start})

    def add_step(self, step: str, values: dict[str, dict[str, np.ndarray]]) -> None:
        """One re-initialisation's per-image similarities, method -> measure -> (N,)."""
        self.steps.append(step)
        for name, by_measure in values.items():
            for measure in MEASURES:
                self.per_image[name][measure].append(by_measure[measure])
                finite = by_measure[measure][np.isfinite(by_measure[measure])]
                self.curves[name][measure].append(float(finite.mean()) if finite.size else math.nan)

    def result(self, count: int, complete: bool) -> SanityResult:
        return SanityResult(
            steps=self.steps, curves=self.curves,
            per_image={name: {m: np.stack(v) for m, v in by.items()}
                       for name, by in self.per_image.items()},
            labels={name: ROW_LABELS.get(name, name) for name, _ in self.specs},
            n_images=count, seconds=time.perf_counter() - self.start, complete=complete)


def randomization_check(model: nn.Module, images: torch.Tensor, targets: Any,
                        methods: Sequence[Any] = DEFAULT_SANITY_ROWS, *,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        settings: BatchSettings | None = None, topk: float = 0.1,
                        max_batch: int = 64, seed: int = 0,
                        on_progress: Callable[[dict[str, Any]], None] | None = None,
                        should_stop: StopCheck = None) -> SanityResult:
    """Cascading randomization of `model` (never modified: the check runs on a deep copy).

    images (N, 3, H, W) normalised, targets (N,). Each method is a row name or
    (name, function(model, images, targets) -> (N, H, W)). Stopped early (`should_stop`),
    it returns the steps done so far with `complete=False`.
    """
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    specs = [_spec(m) for m in methods]

    def maps_of(net: nn.Module, name: str, function: MapFunction | None) -> torch.Tensor:
        if function is not None:
            with eval_mode(net), torch.enable_grad():
                return torch.as_tensor(function(net, images, targets)).detach().float().cpu()
        return attribute_batch(net, images, targets, name, settings=settings, mean=mean,
                               std=std, max_batch=max_batch, seed=seed, should_stop=should_stop)

    twin = private_copy(model)
    groups = cascade_groups(twin)
    cascade = _Cascade(specs, images.shape[0], (len(groups) + 1) * len(specs), on_progress)
    generator = torch.Generator().manual_seed(seed)
    try:
        for name, function in specs:
            cascade.reference[name] = maps_of(twin, name, function)
            cascade.report("trained")
        for group_name, modules in groups:
            stop_if_asked(should_stop)
            with torch.no_grad():
                reinitialise(modules, generator)
            values = {}
            for name, function in specs:
                values[name] = compare_maps(cascade.reference[name],
                                            maps_of(twin, name, function), topk, seed)
                cascade.report(group_name)
            cascade.add_step(group_name, values)
    except Stopped:
        return cascade.result(int(images.shape[0]), complete=False)
    return cascade.result(int(images.shape[0]), complete=True)
