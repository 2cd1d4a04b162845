"""One check for every whole-number value a user or API caller sends.

Sliders and JSON send floats such as 32.0; those are accepted as the integer they are.
NaN, infinities, 2.5, booleans and text are refused with a message that names the value,
says what was sent and, where there is one, the allowed range (the library's own phrasing).
"""

from __future__ import annotations

from typing import Any


def whole_number(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    in_range = "" if low is None or high is None else f" in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer{in_range}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer{in_range}, got {value!r}")
    return value
