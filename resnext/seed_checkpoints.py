"""Checkpoints of the seed's code, in this library's names.

pytorch-cifar100 (models/resnext.py, which the seed blog's code follows) saves
`torch.save(net.state_dict(), path)` (train.py) with its module names: the stem is
`conv1 = Sequential(Conv2d, BatchNorm2d, ReLU)`, the stages `conv2` ... `conv5`, each block
`split_transforms = Sequential(1x1 conv (groups=C), BN, ReLU, 3x3 conv (groups=C), BN, ReLU,
1x1 conv, BN)` plus `shortcut = Sequential(1x1 conv, BN)` where the shape changes, then `fc`.
The seed presets (`seed_resnext50/101/152`: grouped first 1x1, CIFAR stem, 100 classes) are
the same network in torchvision's names, so a rename loads such a file strictly:

    conv1.0.*                          -> conv1.*
    conv1.1.*                          -> bn1.*
    conv{s}.{b}.split_transforms.{i}.* -> layer{s-1}.{b}.{conv1|bn1|conv2|bn2|conv3|bn3}.*
                                          (i = 0, 1, 3, 4, 6, 7; 2 and 5 are ReLUs)
    conv{s}.{b}.shortcut.{0|1}.*       -> layer{s-1}.{b}.downsample.{0|1}.*
    fc.*                               -> fc.*
"""

from __future__ import annotations

import re
from typing import Mapping, TypeVar

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
