"""The weights panel's logic: turn the user's choice into a WeightsChoice that loads, or a
message that says exactly why not and what to do. Shared by the Run and Attributions tabs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import resnext
from resnext import ResNeXtConfig

from ..selection import Selection
from resnext.validation import whole_number
from .models import IMAGENET, MODEL_CACHE, RANDOM, UPLOAD, WeightsChoice

KINDS = (RANDOM, IMAGENET, UPLOAD)
KIND_LABELS = [("Random (seed N)", RANDOM), ("ImageNet (torchvision)", IMAGENET),
               ("Upload a checkpoint (.pth/.pt)", UPLOAD)]
RANDOM_NOTE = ("**Untrained weights.** Maps from a randomly initialised network show its "
               "gradient structure (where the architecture lets signal flow), not learned "
               "evidence, and its predictions are noise. Load ImageNet weights or your own "
               "checkpoint to see what a trained network looks at.")


def model_for(weights: WeightsChoice, selection: Selection) -> tuple[ResNeXtConfig, int, str | None]:
    """(config, input size, published weights name for preprocessing) a choice implies.

    ImageNet weights bring their own architecture (their preset) and eval transform; random
    and uploaded weights use the Architecture tab's config and input size.
    """
    if weights.kind == IMAGENET:
        published = resnext.PUBLISHED_WEIGHTS[weights.name]
        return resnext.PRESETS[published.preset], published.crop_size, weights.name
    return selection.config, selection.image_size, None


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_published(name: str, download: Callable[..., None] | None = None) -> Path:
    """The published file in the hub cache, downloading it if needed; else a message saying
    which file to fetch and where to put it."""
    from resnext import weights as weights_module

    kwargs = {} if download is None else {"download": download}
    try:
        return weights_module.fetch_published(name, progress=True, **kwargs)
    except resnext.WeightsUnavailableError as error:
        raise resnext.WeightsUnavailableError(
            f"ImageNet weights {name} are not available: {error}. Meanwhile random weights and "
            f"uploaded checkpoints still work.") from None


def choose_weights(kind: str, seed: Any, name: str | None, checkpoint: Any, selection: Selection,
                   device: str = "cpu", download: Callable[..., None] | None = None
                   ) -> WeightsChoice:
    """Validate a choice by loading it (into the shared model cache) and return it.

    Raises WeightsError subclasses with the user-facing message: offline ImageNet weights,
    an unsafe or unreadable checkpoint, or one whose keys/shapes don't fit the config.
    """
    if kind not in KINDS:
        raise ValueError(f"weights kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == RANDOM:
        return WeightsChoice(kind=RANDOM, seed=whole_number("seed", seed, 0, 2**31 - 1))
    if kind == IMAGENET:
        if name not in resnext.PUBLISHED_WEIGHTS:
            raise ValueError(f"unknown ImageNet weights {name!r}; choose one of "
                             f"{', '.join(resnext.PUBLISHED_WEIGHTS)}")
        ensure_published(name, download)
        choice = WeightsChoice(kind=IMAGENET, name=name)
    else:
        if isinstance(checkpoint, dict):  # FileData from the API
            checkpoint = checkpoint.get("path")
        if not checkpoint:
            raise ValueError("no checkpoint: upload a .pth or .pt file holding a state_dict")
        path = Path(str(checkpoint))
        if path.suffix.lower() not in (".pth", ".pt"):
            raise ValueError(f"{path.name}: a checkpoint must be a .pth or .pt file")
        choice = WeightsChoice(kind=UPLOAD, path=str(path), digest=file_digest(path))
    config, _, _ = model_for(choice, selection)
    MODEL_CACHE.get(config, choice, device)  # loads it: a mismatch raises here, listed
    return choice


def describe(weights: WeightsChoice, selection: Selection) -> str:
    """Markdown status for the panel: what is loaded, and the honest note for random."""
    config, size, _ = model_for(weights, selection)
    if weights.kind == RANDOM:
        return f"Using **{weights.label}** for {config.name} at {size}×{size}.\n\n{RANDOM_NOTE}"
    if weights.kind == IMAGENET:
        published = resnext.PUBLISHED_WEIGHTS[weights.name]
        return (f"Using **{weights.name}** (top-1 {published.top1:.3f} %): the {published.preset} "
                f"architecture, resize {published.resize_size} → crop {published.crop_size}, "
                f"whatever the Architecture tab shows.")
    return f"Using **{weights.label}** for {config.name} at {size}×{size}."
