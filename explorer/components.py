"""Make Gradio's own input validation name the control it is about.

Gradio checks a value sent to a Slider, Number, Radio or Dropdown before our handler runs
("Value 0 is less than minimum value 1."), and a NaN or a string sent to a numeric
component fails with an internal error. Wrapping each component's `preprocess` turns both
into a message that names the control and its allowed values, and lets nothing else through.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable


def _allowed(component: Any) -> str:
    if getattr(component, "minimum", None) is not None and getattr(component, "maximum", None) is not None:
        return f"a number in [{component.minimum:g}, {component.maximum:g}]"
    choices = getattr(component, "choices", None)
    if choices:
        return "one of " + ", ".join(str(value) for _, value in choices)
    return "a valid value"


def guard_inputs(components: Iterable[Any]) -> None:
    import gradio as gr

    for component in components:
        original = component.preprocess
        label = component.label or type(component).__name__

        def preprocess(payload: Any, _original=original, _component=component, _label=label) -> Any:
            numeric = hasattr(_component, "minimum") and isinstance(_component, (gr.Slider, gr.Number))
            if numeric and payload is not None and (
                    isinstance(payload, bool) or not isinstance(payload, (int, float))
                    or not math.isfinite(payload)):
                raise gr.Error(html.escape(f"{_label}: expected {_allowed(_component)}, got {payload!r}", quote=False),
                               print_exception=False)
            try:
                return _original(payload)
            except gr.Error as error:
                raise gr.Error(html.escape(f"{_label}: {error.message}", quote=False), print_exception=False) from None
            except Exception:  # noqa: BLE001 - any other rejection still names the control
                raise gr.Error(html.escape(f"{_label}: expected {_allowed(_component)}, got {payload!r}", quote=False),
                               print_exception=False) from None

        component.preprocess = preprocess
