"""Input controls that name themselves when Gradio refuses a value, or leave it to us.

Gradio checks a value sent to a Slider, Number, Radio or Dropdown before our handler runs
("Value 0 is less than minimum value 1."), and a NaN or a string sent to a numeric
component fails with an internal error. Either would raise before the handler, covering
every output with an error badge. These subclasses (drawn by the frontend as the built-in
component they extend: `is_template`) change that:
- a number outside a Slider's or Number's range reaches the handler as it was sent: every
  handler checks its numbers against the one set of limits (the same the control was
  built from) and, on the page, puts the control back to the value in use;
- anything else refused becomes a message that names the control and its allowed values.

Subclasses rather than a patched instance: when an event updates a control, Gradio keeps a
per-session copy made with `block.__class__(**props)`, which keeps the class, not the patch.
"""

from __future__ import annotations

import html
import math
from typing import Any, Callable

import gradio as gr


def _allowed(component: Any) -> str:
    if getattr(component, "minimum", None) is not None and getattr(component, "maximum", None) is not None:
        return f"a number in [{component.minimum:g}, {component.maximum:g}]"
    choices = getattr(component, "choices", None)
    if choices:
        return "one of " + ", ".join(str(value) for _, value in choices)
    return "a valid value"


def _refuse(component: Any, text: str) -> gr.Error:
    label = component.label or type(component).__name__
    return gr.Error(html.escape(f"{label}: {text}", quote=False), print_exception=False)


def _guarded(component: Any, payload: Any, preprocess: Callable[[Any], Any]) -> Any:
    numeric = isinstance(component, (gr.Slider, gr.Number))
    if numeric and payload is not None and (
            isinstance(payload, bool) or not isinstance(payload, (int, float))
            or not math.isfinite(payload)):
        raise _refuse(component, f"expected {_allowed(component)}, got {payload!r}")
    try:
        return preprocess(payload)
    except gr.Error as error:
        if numeric:
            # Out of the control's range: the handler's own check decides (module docstring).
            return payload
        raise _refuse(component, error.message) from None
    except Exception:  # noqa: BLE001 - any other rejection still names the control
        raise _refuse(component, f"expected {_allowed(component)}, got {payload!r}") from None


class Slider(gr.Slider):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _guarded(self, payload, super().preprocess)


class Number(gr.Number):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _guarded(self, payload, super().preprocess)


class Radio(gr.Radio):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _guarded(self, payload, super().preprocess)


class Dropdown(gr.Dropdown):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return _guarded(self, payload, super().preprocess)
