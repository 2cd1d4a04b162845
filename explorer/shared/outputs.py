"""Handlers that answer by name: a handler returns `{name: value}` for the outputs it sets,
and the wiring maps those names onto the tab's components (Gradio then leaves every output
the dict does not name as it was). So a handler never counts positions, and "change nothing"
is an empty dict rather than `(gr.skip(),) * 11`. Tests call the handlers directly and read
the outputs by name."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping


def named(handler: Callable[..., Any], components: Mapping[str, Any]) -> Callable[..., Any]:
    """`handler` wired to `components` (name -> component): its `{name: value}` answer
    becomes `{component: value}`; any other answer (`gr.skip()`, itself a dict with a
    "__type__" key) passes as it is. The handler's signature is kept, so Gradio still passes
    `gr.Request`, progress and events."""
    import gradio as gr

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        answer = handler(*args, **kwargs)
        if not isinstance(answer, dict) or "__type__" in answer:
            return answer
        unknown = set(answer) - set(components)
        if unknown:
            raise KeyError(f"{handler.__name__} answered {sorted(unknown)}, which it is not "
                           f"wired to")
        return {components[name]: value for name, value in answer.items()} or gr.skip()

    return wrapper
