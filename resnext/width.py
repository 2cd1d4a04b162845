"""The paper's complexity-preserving bottleneck width (Sec. 3.3 / Table 2)."""

from __future__ import annotations

import math

from .config import CARDINALITY_RANGE, ResNeXtConfig
from .validation import whole_number

# The conv2-stage block of the template has 256 input and output channels (Table 1).
_TEMPLATE_CHANNELS = 256


def block_template_params(cardinality: int, width: int) -> int:
    """Weights of a conv2 block: C * (256*d + 3*3*d*d + d*256) (paper Sec. 3.3)."""
    return cardinality * (_TEMPLATE_CHANNELS * width + 9 * width * width + width * _TEMPLATE_CHANNELS)


def preserving_width(cardinality: int, reference: str | ResNeXtConfig = "resnet50") -> int:
    """Bottleneck width d that keeps a conv2 block's weights equal to `reference`'s.

    Solves 9*C*d^2 + 512*C*d = P_ref for d and rounds to the nearest integer. With ResNet-50
    (P_ref = 69,632) this gives the paper's Table 2: C = 1, 2, 4, 8, 32 -> d = 64, 40, 24,
    14, 4. For very large C the exact solution falls below 0.5; d is then 1, the narrowest
    path there is (its cost no longer matches the reference).
    """
    cardinality = whole_number("cardinality", cardinality, *CARDINALITY_RANGE,
                               integral_floats=False)
    if isinstance(reference, str):
        from .presets import PRESETS

        if reference not in PRESETS:
            raise ValueError(f"reference must be a preset name {sorted(PRESETS)} or a config, "
                             f"got {reference!r}")
        reference = PRESETS[reference]
    target = block_template_params(reference.cardinality, reference.bottleneck_width)
    a = 9 * cardinality
    b = 2 * _TEMPLATE_CHANNELS * cardinality
    exact = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
    return max(1, int(math.floor(exact + 0.5)))
