"""Make Gradio's own input validation name the control it is about, or leave it to ours.

Gradio checks a value sent to a Slider, Number, Radio or Dropdown before our handler runs
("Value 0 is less than minimum value 1."), and a NaN or a string sent to a numeric
component fails with an internal error. Either would raise before the handler, covering
every output with an error badge. Wrapping each component's `preprocess`:
- a number outside a Slider's or Number's range reaches the handler as it was sent: every
  handler checks its numbers against the one set of limits (the same the control was
  built from) and, on the page, puts the control back to the value in use;
- anything else refused becomes a message that names the control and its allowed values.
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
                if numeric:
                    # Out of the control's range: the handler's own check decides and, on the
                    # page, puts the control back (see the module docstring).
                    return payload
                raise gr.Error(html.escape(f"{_label}: {error.message}", quote=False), print_exception=False) from None
            except Exception:  # noqa: BLE001 - any other rejection still names the control
                raise gr.Error(html.escape(f"{_label}: expected {_allowed(_component)}, got {payload!r}", quote=False),
                               print_exception=False) from None

        component.preprocess = preprocess
