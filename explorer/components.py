"""Input controls that name themselves when Gradio refuses a value, or leave it to us; handlers
that answer by name; endpoints that only serve the API.

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

import functools
import html
import inspect
import math
from typing import Any, Callable, Mapping

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


# Outputs by name, and API-only endpoints ---------------------------------------------------

def named(handler: Callable[..., Any], outputs: Mapping[str, Any]) -> Callable[..., Any]:
    """`handler`, answering by name: it returns `{name: value}` for the outputs it sets and
    Gradio gets `{component: value}`; every output left out keeps its value (as `gr.skip()`
    would, so there are no positional tuples of skips). Anything else it returns (`gr.skip()`
    for all of them) passes through. A name that is not an output is a bug: it raises. The
    handler's signature is kept, so Gradio still passes `gr.Request`, progress and events."""
    named_outputs = dict(outputs)

    @functools.wraps(handler)
    def answer(*args: Any, **kwargs: Any) -> Any:
        result = handler(*args, **kwargs)
        if not isinstance(result, dict) or "__type__" in result:
            return result
        unknown = set(result) - set(named_outputs)
        if unknown:
            raise KeyError(f"{handler.__name__} answered {sorted(unknown)}, which are not "
                           f"its outputs {list(named_outputs)}")
        return {named_outputs[name]: value for name, value in result.items()} or gr.skip()

    return answer


def by_name(handler: Callable[..., Any], outputs: Mapping[str, Any]) -> dict[str, Any]:
    """`fn` and `outputs` for an event whose handler answers by name (`named`)."""
    return {"fn": named(handler, outputs), "outputs": list(dict(outputs).values())}


def api(fn: Callable[..., Any], api_name: str, **options: Any) -> None:
    """An endpoint that only serves the API (`gr.api`): no hidden components or buttons.

    Its parameters, defaults and outputs come from `fn`'s type hints. gr.api reads the
    return annotation as written (`inspect.signature` without `eval_str`), so under
    `from __future__ import annotations` a `tuple[...]` would count as one output: the
    evaluated signature is set on `fn` first. gr.api runs without pre- or postprocessing:
    `fn` checks every value itself (ours do, under the argument's name) and cannot take
    `gr.Progress` (Gradio 6.31 calls the default while declaring the endpoint).
    """
    fn.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    gr.api(fn, api_name=api_name, **options)
