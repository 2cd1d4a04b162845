"""The one stop mechanism of long model work: the Attributions tab's Cancel and the Evaluate
tab's Stop.

`CANCEL_FLAGS` holds one flag per browser session and feature (`work_key`: an attribution's
Cancel does not stop the same page's evaluation). The button sets it; the library asks it
(`should_stop=flag.is_set`) before every forward pass of one image's attribution and before
every chunk of an evaluation, and raises `resnext.explain.Stopped`, so running work ends at
its next forward or chunk (one image: nothing to keep; an evaluation: what finished is
kept). Work still waiting in the queue is dropped when its turn comes: each press of a work
button and of Cancel/Stop carries the browser's clock (`CLICK_TIME_JS`), and work pressed
before the latest Cancel raises `Stopped` at once. The page's wrapper (`errors.keep_state`)
turns `Stopped` into an unchanged page without a message: the button has said it. (Gradio's
own `cancels=` is not used: cutting a running event off races with its answer and can leave
an error toast on the page.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Hashable, Iterator

from resnext.explain.stopping import Stopped

# The features whose work can be stopped, each with its own flag per session.
FEATURES = ("attributions", "evaluate")


class CancelFlags:
    """One `threading.Event` per key (`work_key`: a session and a feature), the most recent
    `capacity` keys kept."""

    def __init__(self, capacity: int = 1024) -> None:
        self._flags: OrderedDict[Hashable, threading.Event] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity
        self._busy: dict[Hashable, int] = {}  # keys with work running, and how many
        self._cancelled_at: OrderedDict[Hashable, float] = OrderedDict()  # browser ms of Cancel

    def fresh(self, session: Hashable) -> threading.Event:
        """The session's flag, cleared: a new piece of work starts."""
        with self._lock:
            flag = self._flags.pop(session, None) or threading.Event()
            flag.clear()
            self._flags[session] = flag
            while len(self._flags) > self._capacity:
                self._flags.popitem(last=False)
            return flag

    @contextmanager
    def running(self, session: Hashable) -> Iterator[threading.Event]:
        """A fresh flag for the work inside the block; the session counts as busy there."""
        flag = self.fresh(session)
        with self._lock:
            self._busy[session] = self._busy.get(session, 0) + 1
        try:
            yield flag
        finally:
            with self._lock:
                self._busy[session] -= 1
                if not self._busy[session]:
                    del self._busy[session]

    @contextmanager
    def work(self, session: Hashable, clicked_at: Any = None) -> Iterator[threading.Event]:
        """`running` for work whose button was pressed at `clicked_at` (browser ms); raises
        `Stopped` instead when Cancel came after that press (the work waited in the queue)."""
        if self.dropped(session, clicked_at):
            raise Stopped("dropped: Cancel was pressed after it")
        with self.running(session) as flag:
            yield flag

    def cancel(self, session: Hashable, clicked_at: Any = None) -> bool:
        """Set the session's flag; False when the session has no work running. With the
        browser time of the press, work pressed before it and still waiting is dropped."""
        with self._lock:
            if _is_time(clicked_at):
                self._cancelled_at.pop(session, None)
                self._cancelled_at[session] = float(clicked_at)
                while len(self._cancelled_at) > self._capacity:
                    self._cancelled_at.popitem(last=False)
            flag = self._flags.get(session)
            busy = session in self._busy
        if flag is None or not busy:
            return False
        flag.set()
        return True

    def dropped(self, session: Hashable, clicked_at: Any) -> bool:
        """Whether work pressed at `clicked_at` (browser ms) was cancelled before it began."""
        with self._lock:
            cancelled_at = self._cancelled_at.get(session)
        return _is_time(clicked_at) and cancelled_at is not None and float(
            clicked_at) <= cancelled_at


def _is_time(value: Any) -> bool:
    """A browser timestamp in ms (a page without the script sends nothing: never dropped)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# The page's work and Cancel buttons replace their last input (a hidden number) with the
# browser's clock, so the two are compared on one clock whatever the server's says.
CLICK_TIME_JS = "(...values) => [...values.slice(0, -1), Date.now()]"


CANCEL_FLAGS = CancelFlags()


def work_key(request: Any, feature: str) -> tuple[str, str]:
    """The flag of one feature's work in the browser session a Gradio request belongs to
    ("no-session" for direct calls)."""
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {', '.join(FEATURES)}, got {feature!r}")
    return getattr(request, "session_hash", None) or "no-session", feature
