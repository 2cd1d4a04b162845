"""Training's limits, written once: `fit` and `estimate` check their arguments against them,
the CLI its flags, and the app builds its Train tab controls from them (and checks what a
page or an API call sends under the control's name). Torch-free: the app reads it at
start-up. The data's own limits (image side, images per split) are the data registry's,
and seeds are the project's; they are repeated here by reference only, so that a reader of
training's limits finds them all in one place.
"""

from __future__ import annotations

import math
from typing import Any

from ..data.registry import IMAGE_SIZE_RANGE, IMAGES_RANGE
from ..validation import SEED_RANGE

EPOCHS_RANGE = (1, 10_000)
# BatchNorm needs two values per channel in training, and a network whose last map is 1x1
# (an ImageNet stem at 32 px) has one value per image there: so two images per batch.
BATCH_RANGE = (2, 65_536)
# A training split must fill one smallest batch; a test split needs one image.
TRAIN_IMAGES_RANGE = (BATCH_RANGE[0], IMAGES_RANGE[1])
TEST_IMAGES_RANGE = IMAGES_RANGE
# The peak learning rate: above 0 (the low end is open), at most 10.
LR_RANGE = (0.0, 10.0)
THREADS_RANGE = (1, 1024)  # the CLI's --threads: CPU threads per process

__all__ = ["BATCH_RANGE", "EPOCHS_RANGE", "IMAGE_SIZE_RANGE", "LR_RANGE", "SEED_RANGE",
           "TEST_IMAGES_RANGE", "THREADS_RANGE", "TRAIN_IMAGES_RANGE", "learning_rate"]


def learning_rate(name: str, value: Any, hint: str = "", shown: Any = None) -> float:
    """`value` as a peak learning rate in LR_RANGE (low end open), or a ValueError naming
    `name`, with `hint` after the range and `shown` (default: `value`) as what was sent."""
    low, high = LR_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low < value <= high):
        sent = value if shown is None else shown
        raise ValueError(f"{name} must be a number in ({low:g}, {high:g}]{hint}, got {sent!r}")
    return float(value)
