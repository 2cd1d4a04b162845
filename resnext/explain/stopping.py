"""Stopping long attribution work early, with no torch: the one exception the library raises
when its caller says stop, importable by the app at start-up.

Every long computation here takes `should_stop`, a function of no arguments that returns
True once the caller wants the work to end (the app passes a flag's `is_set`). It is asked
before each forward pass of one image's attribution (`single.ForwardMonitor`) and before
each chunk of a batch (`batch.attribute_batch`, `metrics.perturbation_curves`, the sanity
check's steps). One image's attribution lets `Stopped` reach its caller (there is nothing
partial to keep); `evaluate` and `randomization_check` catch it and return what finished,
marked `complete=False`.
"""

from __future__ import annotations

from typing import Callable, Optional

StopCheck = Optional[Callable[[], bool]]


class Stopped(Exception):
    """The caller's `should_stop()` said stop (a person pressed Cancel or Stop)."""


def stop_if_asked(should_stop: StopCheck) -> None:
    """Raise `Stopped` when `should_stop` is given and says stop."""
    if should_stop is not None and should_stop():
        raise Stopped("stopped")
