"""Per-session cancel flags for long model work (attributions).

Gradio's `cancels=` stops waiting for a running handler but cannot stop its thread; the
Cancel button also sets the session's flag here, which the model's forward pre-hook checks
(`attribution.ForwardMonitor`), so the work stops at its next forward pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class CancelFlags:
    """One `threading.Event` per session, the most recent `capacity` sessions kept."""

    def __init__(self, capacity: int = 1024) -> None:
        self._flags: OrderedDict[str, threading.Event] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def fresh(self, session: str) -> threading.Event:
        """The session's flag, cleared: a new piece of work starts."""
        with self._lock:
            flag = self._flags.pop(session, None) or threading.Event()
            flag.clear()
            self._flags[session] = flag
            while len(self._flags) > self._capacity:
                self._flags.popitem(last=False)
            return flag

    def cancel(self, session: str) -> bool:
        """Set the session's flag; False when the session has no work to cancel."""
        with self._lock:
            flag = self._flags.get(session)
        if flag is None:
            return False
        flag.set()
        return True


CANCEL_FLAGS = CancelFlags()


def session_key(request: Any) -> str:
    """The browser session a Gradio request belongs to ("no-session" for direct calls)."""
    return getattr(request, "session_hash", None) or "no-session"
