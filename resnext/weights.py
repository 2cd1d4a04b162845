"""Load trained weights: torchvision's published ImageNet files, or a user's checkpoint.

Every file is read with `torch.load(..., weights_only=True)`: a checkpoint is data, and a
pickle that would run code is refused before any of it runs.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import urllib.error
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch import nn

from .presets import PRESETS
from .published import (
    PUBLISHED_WEIGHTS,
    CheckpointFileError,
    PublishedWeights,
    WeightsError,
    WeightsMismatchError,
    WeightsUnavailableError,
)


def hub_checkpoint_dir() -> Path:
    """Where torch.hub keeps downloaded checkpoints ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def published_weights_path(name: str) -> Path:
    return hub_checkpoint_dir() / published(name).filename


def published(name: str) -> PublishedWeights:
    if name not in PUBLISHED_WEIGHTS:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(PUBLISHED_WEIGHTS)}")
    return PUBLISHED_WEIGHTS[name]


def fetch_published(name: str, progress: bool = True,
                    download: Callable[..., None] = torch.hub.download_url_to_file) -> Path:
    """Path of a published checkpoint in the hub cache, downloading it (hash-checked) if needed."""
    weights = published(name)
    path = published_weights_path(name)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        download(weights.url, str(path), hash_prefix=weights.hash_prefix, progress=progress)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        raise WeightsUnavailableError(
            f"could not download {name} from {weights.url} ({error}). To use it offline, "
            f"download that file on a machine that is online and copy it to {path}"
        ) from error
    return path


def _check_checkpoint_format(path: Path) -> None:
    """Refuse, by its first bytes, a file that is no PyTorch checkpoint at all, so that a
    text file is not reported as a pickle that asks to run code."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    # torch.save writes a zip archive ("PK\x03\x04"); the legacy format and plain pickles of
    # protocol 2+ start with the PROTO opcode 0x80.
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return
    size = path.stat().st_size
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < size:
        raise CheckpointFileError(
            f"{path.name} could not be read as a PyTorch checkpoint: it is a safetensors file "
            f"(a JSON header, then tensors). Load it with safetensors.torch.load_file and save "
            f"the state_dict with torch.save(state_dict, path) to use it here.")
    raise CheckpointFileError(
        f"{path.name} could not be read as a checkpoint: it is not one. A PyTorch checkpoint "
        f"is a zip archive (torch.save) or a pickle, and a safetensors file starts with its "
        f"JSON header; this {size}-byte file starts with {head[:8]!r}.")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state_dict from a .pth/.pt file, read with weights_only=True.

    Accepts a bare state_dict or one nested under "state_dict" / "model" (common in
    training scripts), with an optional "module." prefix (DataParallel).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"no checkpoint file at {path}")
    _check_checkpoint_format(path)
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointFileError(
            f"{path.name} is not a plain state_dict: it asks to run code or build objects "
            f"when loaded, which is refused (torch.load weights_only=True). Save the model "
            f"with torch.save(model.state_dict(), path)."
        ) from error
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointFileError(
            f"{path.name} could not be read as a PyTorch checkpoint "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise CheckpointFileError(
            f"{path.name} does not hold a state_dict (a mapping of names to tensors)")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise WeightsMismatchError listing every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = [(k, tuple(state[k].shape), tuple(expected[k].shape))
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mis_shaped:
        raise WeightsMismatchError(missing, unexpected, mis_shaped)


def load_weights(model: nn.Module, source: str | os.PathLike[str], progress: bool = True
                 ) -> nn.Module:
    """Load `source` (a published weights name or a checkpoint path) into `model`, strictly.

    Checkpoints are in torchvision's (form c) layout, or in the seed's code's names
    (pytorch-cifar100's `conv2.0.split_transforms.0.weight`, ...: see `seed_key` below),
    which are renamed to it; a model built in form (a) or (b) gets them converted. One that
    does not fit raises WeightsMismatchError naming the preset it fits, if any. Returns the
    model, in eval mode.
    """
    from .forms import convert_state_dict

    if isinstance(source, str) and source in PUBLISHED_WEIGHTS:
        path = fetch_published(source, progress=progress)
    elif isinstance(source, str) and "IMAGENET1K" in source:
        raise WeightsError(f"unknown weights {source!r}; known: {', '.join(PUBLISHED_WEIGHTS)}")
    else:
        path = Path(source)
    state = read_checkpoint(path)
    if is_seed_checkpoint(state):
        state = from_seed_names(state)
    layout_c = state
    cfg = getattr(model, "config", None)
    if cfg is not None and cfg.block_form != "c" and not any(".paths." in k for k in state):
        try:
            state = convert_state_dict(state, cfg, "c", cfg.block_form)
        except (KeyError, RuntimeError):
            pass  # not a form-(c) checkpoint for this config: let the check below report it
    try:
        check_state_dict(model, state)
    except WeightsMismatchError as error:
        raise WeightsMismatchError(error.missing, error.unexpected, error.mis_shaped,
                                   fits=checkpoint_fit(layout_c)) from None
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    return model.eval()


@functools.lru_cache(maxsize=None)
def _preset_shapes(name: str) -> dict[str, tuple[int, ...]]:
    from .model import build_model

    # On the meta device: shapes without allocating (seed_resnext152 has 33 M parameters);
    # init="pytorch" skips the Kaiming pass, half the time of a build.
    model = build_model(PRESETS[name], device="meta", init="pytorch")
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def checkpoint_fit(state: Mapping[str, torch.Tensor]) -> str:
    """Which preset a (form c) state_dict is for, in words, for a mismatch message: every
    key and shape the same, or all but the classifier's (another number of classes)."""
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    body = {key: shape for key, shape in shapes.items() if not key.startswith("fc.")}
    seed = " (the seed's code / pytorch-cifar100's network)"
    for name in PRESETS:
        if shapes == _preset_shapes(name):
            return (f"it is a checkpoint of the preset {name}"
                    f"{seed if name.startswith('seed_') else ''}: build that network to load it")
    for name in PRESETS:
        expected = _preset_shapes(name)
        if body == {k: v for k, v in expected.items() if not k.startswith("fc.")} and (
                len(shapes.get("fc.weight", ())) == 2):
            return (f"it fits the preset {name} with num_classes="
                    f"{shapes['fc.weight'][0]}: build that network to load it")
    return "it fits none of the presets"


# The seed's checkpoints ------------------------------------------------------------------
# Checkpoints of the seed's code, in this library's names.
#
# pytorch-cifar100 (models/resnext.py, which the seed blog's code follows) saves
# `torch.save(net.state_dict(), path)` (train.py) with its module names: the stem is
# `conv1 = Sequential(Conv2d, BatchNorm2d, ReLU)`, the stages `conv2` ... `conv5`, each block
# `split_transforms = Sequential(1x1 conv (groups=C), BN, ReLU, 3x3 conv (groups=C), BN, ReLU,
# 1x1 conv, BN)` plus `shortcut = Sequential(1x1 conv, BN)` where the shape changes, then `fc`.
# The seed presets (`seed_resnext50/101/152`: grouped first 1x1, CIFAR stem, 100 classes) are
# the same network in torchvision's names, so a rename loads such a file strictly:
#
#     conv1.0.*                          -> conv1.*
#     conv1.1.*                          -> bn1.*
#     conv{s}.{b}.split_transforms.{i}.* -> layer{s-1}.{b}.{conv1|bn1|conv2|bn2|conv3|bn3}.*
#                                           (i = 0, 1, 3, 4, 6, 7; 2 and 5 are ReLUs)
#     conv{s}.{b}.shortcut.{0|1}.*       -> layer{s-1}.{b}.downsample.{0|1}.*
#     fc.*                               -> fc.*

T = TypeVar("T")

# Index in `split_transforms` -> our block's module (indices 2 and 5 hold parameterless ReLUs).
_SPLIT_TRANSFORMS = {0: "conv1", 1: "bn1", 3: "conv2", 4: "bn2", 6: "conv3", 7: "bn3"}
_STEM = {"0": "conv1", "1": "bn1"}
_BLOCK_KEY = re.compile(r"conv(\d+)\.(\d+)\.(split_transforms|shortcut)\.(\d+)\.(.+)")
_STEM_KEY = re.compile(r"conv1\.([01])\.(.+)")


def is_seed_checkpoint(state: Mapping[str, object]) -> bool:
    """Whether a state_dict has the seed's (pytorch-cifar100's) module names."""
    return any(".split_transforms." in key for key in state)


def seed_key(key: str) -> str:
    """Our name for one of the seed's state_dict keys; a key it does not know is kept as it
    is, so that the strict check reports it as unexpected."""
    stem = _STEM_KEY.fullmatch(key)
    if stem is not None:
        return f"{_STEM[stem.group(1)]}.{stem.group(2)}"
    block = _BLOCK_KEY.fullmatch(key)
    if block is None:
        return key
    stage, index, part, position, rest = block.groups()
    if int(stage) < 2:
        return key
    if part == "split_transforms":
        module = _SPLIT_TRANSFORMS.get(int(position))
        if module is None:
            return key
    elif position in ("0", "1"):
        module = f"downsample.{position}"
    else:
        return key
    return f"layer{int(stage) - 1}.{index}.{module}.{rest}"


def from_seed_names(state: Mapping[str, T]) -> dict[str, T]:
    """The state_dict with our names (order kept)."""
    renamed: dict[str, T] = {}
    for key, value in state.items():
        ours = seed_key(key)
        if ours in renamed:  # two keys for one of ours: not the seed's layout; leave it be
            return dict(state)
        renamed[ours] = value
    return renamed
