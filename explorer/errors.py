"""Turning failures into messages a user can act on, while the log keeps the detail.

Two wrappers, one rule for each audience:
- `user_errors` (named API endpoints): a refused input raises `gr.Error`, so a script gets
  an exception with the message.
- `keep_state` (the page): a refused input shows its message as a warning toast and every
  output keeps its value. Raising `gr.Error` from a page handler would cover each output
  with a red "Error" badge until another control is touched, hiding earlier results.
"""

from __future__ import annotations

import functools
import html
import logging
import sys
from typing import Any, Callable, TypeVar

log = logging.getLogger("explorer")

F = TypeVar("F", bound=Callable[..., Any])


def _expected_errors() -> tuple[type[BaseException], ...]:
    import resnext

    expected: list[type[BaseException]] = [ValueError, TypeError, resnext.WeightsError]
    # A dataset that is not on disk says where to put it. Looked up only if loaded: an
    # error in a cheap handler must not import torch just to be classified.
    cifar = sys.modules.get("resnext.data.cifar")
    if cifar is not None:
        expected.append(cifar.DatasetUnavailableError)
    return tuple(expected)


def user_message(fn_name: str, error: BaseException) -> str:
    """The text a user sees for `error` (HTML-escaped: Gradio renders it as HTML and messages
    can quote what the user sent). Unexpected errors are logged with their traceback."""
    if isinstance(error, _expected_errors()):
        log.info("%s refused: %s", fn_name, error)
        return html.escape(str(error), quote=False)
    log.error("%s failed", fn_name, exc_info=error)
    return html.escape(f"{fn_name} failed: {type(error).__name__}: {error}", quote=False)


def user_errors(fn: F) -> F:
    """Run an API handler; any failure becomes gr.Error with a message, never a traceback."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - last line of defence for the page
            raise gr.Error(user_message(fn.__name__, error), print_exception=False) from None

    return wrapper  # type: ignore[return-value]


def keep_state(fn: F | None = None, *, restore: Callable[..., Any] | None = None) -> Any:
    """Run a page handler; a failure shows its message and leaves the page as it was.

    Every output keeps its value (`gr.skip()`), unless `restore` is given: it is called with
    the handler's arguments and returns the outputs to show instead, so controls that sent a
    refused value go back to the value in use. Work the person stopped (`Stopped`: Cancel or
    Stop, `shared.cancellation`) keeps every output too, without a message: the button has
    given it.
    """
    import gradio as gr

    from resnext.explain.stopping import Stopped

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            except Stopped:
                return gr.skip()
            except Exception as error:  # noqa: BLE001 - the page must never show a traceback
                message = error.message if isinstance(error, gr.Error) else user_message(
                    handler.__name__, error)
                gr.Warning(message)
                return gr.skip() if restore is None else restore(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate
