"""Per-session cancel flags for long model work (attributions).

Gradio's `cancels=` stops waiting for a running handler but cannot stop its thread; the
Cancel button also sets the session's flag here, which the model's forward pre-hook checks
(`attribution.ForwardMonitor`), so the work stops at its next forward pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator


class CancelFlags:
    """One `threading.Event` per session, the most recent `capacity` sessions kept."""

    def __init__(self, capacity: int = 1024) -> None:
        self._flags: OrderedDict[str, threading.Event] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity
        self._busy: dict[str, int] = {}  # sessions with work running, and how many

    def fresh(self, session: str) -> threading.Event:
        """The session's flag, cleared: a new piece of work starts."""
        with self._lock:
            flag = self._flags.pop(session, None) or threading.Event()
            flag.clear()
            self._flags[session] = flag
            while len(self._flags) > self._capacity:
                self._flags.popitem(last=False)
            return flag

    @contextmanager
    def running(self, session: str) -> Iterator[threading.Event]:
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

    def cancel(self, session: str) -> bool:
        """Set the session's flag; False when the session has no work running."""
        with self._lock:
            flag = self._flags.get(session)
            busy = session in self._busy
        if flag is None or not busy:
            return False
        flag.set()
        return True


CANCEL_FLAGS = CancelFlags()


def session_key(request: Any) -> str:
    """The browser session a Gradio request belongs to ("no-session" for direct calls)."""
    return getattr(request, "session_hash", None) or "no-session"
