"""Class names and top-k predictions, shared by the Run and Attributions tabs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

CLASS_NAMES_PATH = Path(__file__).resolve().parents[2] / "assets" / "imagenet_classes.txt"


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """ImageNet-1K class names in index order (assets/imagenet_classes.txt, read once)."""
    names = CLASS_NAMES_PATH.read_text(encoding="utf-8").splitlines()
    return tuple(name.strip() for name in names if name.strip())


def class_names_for(num_classes: int) -> tuple[str, ...]:
    """ImageNet's names for a 1000-class head, else "class 0", "class 1", ..."""
    if num_classes == 1000:
        return imagenet_class_names()
    return tuple(f"class {i}" for i in range(num_classes))


def top_predictions(logits: Any, class_names: Sequence[str], k: int = 5) -> list[tuple[int, str, float]]:
    """(index, name, probability) of the k most probable classes of logits (1, K)."""
    import torch

    probabilities = torch.softmax(logits.detach().float(), dim=1)[0]  # (K,)
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [(int(i), class_names[int(i)], float(v)) for v, i in zip(values, indices)]
