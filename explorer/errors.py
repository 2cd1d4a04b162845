"""Turning failures into messages a user can act on, while the log keeps the detail."""

from __future__ import annotations

import functools
import html
import logging
from typing import Any, Callable, TypeVar

log = logging.getLogger("explorer")

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Run a handler; a ValueError/TypeError/library error becomes gr.Error with its message.

    Anything unexpected is logged with its traceback and shown as a short message, so the
    page never gets a stack trace and the server keeps serving.
    """
    import gradio as gr

    import resnext

    expected = (ValueError, TypeError, resnext.WeightsError)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except expected as error:
            log.info("%s refused: %s", fn.__name__, error)
            # gr.Error renders HTML: escape, since messages can quote what the user sent.
            raise gr.Error(html.escape(str(error), quote=False), print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - last line of defence for the page
            log.exception("%s failed", fn.__name__)
            raise gr.Error(html.escape(f"{fn.__name__} failed: {type(error).__name__}: {error}", quote=False),
                           print_exception=False) from None

    return wrapper  # type: ignore[return-value]
