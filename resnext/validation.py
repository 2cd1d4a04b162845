"""The one whole-number check of the project: the library's config, its helpers and every
value the app or its HTTP API receives go through `whole_number`.

Sliders and JSON send floats such as 32.0; by default those are accepted as the integer they
are. NaN, infinities, 2.5, booleans and text are refused with a message that names the value,
says what was sent and, where there is one, the allowed range.
"""

from __future__ import annotations

import math
from typing import Any

# Every seed the project takes (weights, datasets, training): a non-negative 31-bit integer,
# which any RNG accepts as it is (numpy's legacy seeds stop at 2**32 - 1, a signed C int at
# 2**31 - 1).
SEED_RANGE = (0, 2**31 - 1)


def whole_number(name: str, value: Any, low: int | None = None, high: int | None = None, *,
                 integral_floats: bool = True) -> int:
    """Return `value` as an int in [low, high], or raise ValueError naming `name`.

    `integral_floats=False` refuses 32.0 too (with a hint to pass 32): the frozen config
    keeps exactly what it was given, so it asks its callers for real integers.
    """
    in_range = "" if low is None or high is None else f" in [{low}, {high}]"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        if not integral_floats:
            raise ValueError(f"{name} must be an integer{in_range}, got the float {value!r}; "
                             f"pass {int(value)}")
        value = int(value)
    # bool is an int subclass; True as a cardinality is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer{in_range}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bound = in_range or (f" of at least {low}" if low is not None else f" of at most {high}")
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return value
