"""How the app starts its long-running children (training runs, study workers): the
environment they import our code from and the priority they run at. One place, so a run
started by the Train tab and a worker started by the Study tab behave alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from .assets import checkout_root

# Niceness of a child: it takes every core it can, and the app's own requests (a slider
# move is a few ms of arithmetic) must still get the CPU at once.
CHILD_NICENESS = 10


def child_environment() -> dict[str, str]:
    """A child's environment: ours, plus the checkout on PYTHONPATH when the app runs from
    one (the child must import the same `resnext`, whatever its working folder); an
    installed package is on the interpreter's own path already."""
    root = checkout_root()
    if root is None:
        return dict(os.environ)
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths).rstrip(os.pathsep)}


def lower_priority() -> None:  # runs in the child between fork and exec
    try:
        os.nice(CHILD_NICENESS)
    except OSError:
        pass


def start_child(module: str, args: Sequence[str], log_path: Path) -> subprocess.Popen:
    """`python -m <module> <args>` with its output appended to `log_path`, in its own
    session (a signal to the app, Ctrl-C, does not reach it, and a stop signals it and
    nothing else), importing our code, at a lower priority than the app."""
    with open(log_path, "ab") as log:  # the child holds its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=child_environment(), start_new_session=True,
            preexec_fn=lower_priority)
