"""A run's clock: when a step event is due, one recent rate, and the time left from it.

The rate is the images of the last `RATE_WINDOW` steps over the time they took, leaving out
the first `SKIPPED_STEPS` steps of each epoch: they carry the epoch's start (the sampler's
new order, caches cold after the test pass) and, in the run's first epoch, allocation and
compiling, which a run-long or epoch-long average drags along for minutes. The time left
is that same rate applied to the training images left, plus each remaining test pass at
the last measured one's duration (before the first, at a third of a training image's time
per test image: forward only, `estimation.TRAIN_MAC_FACTOR`). So the rate and the time
left on one line always agree.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque

RATE_WINDOW = 20  # steps
SKIPPED_STEPS = 2  # of each epoch
TEST_IMAGE_SHARE = 1 / 3  # a test image's time in training images' (forward vs 3x MACs)


class Clock:
    """`interval`: step events at most this often (plus each epoch's first and last)."""

    def __init__(self, images_per_epoch: int, test_images: int, steps_per_epoch: int,
                 interval: float) -> None:
        self.images_per_epoch, self.test_images = images_per_epoch, test_images
        self.steps_per_epoch, self.interval = steps_per_epoch, interval
        self.epoch_start = self.last_step = time.perf_counter()
        self.step_in_epoch = 0
        self.last_event = -math.inf
        self.window: deque[tuple[int, float]] = deque(maxlen=RATE_WINDOW)
        self.fallback: deque[tuple[int, float]] = deque(maxlen=RATE_WINDOW)  # skipped steps
        self.test_seconds: float | None = None

    def start_epoch(self) -> None:
        self.epoch_start = self.last_step = time.perf_counter()
        self.step_in_epoch = 0
        self.last_event = -math.inf

    def step_done(self, images: int) -> None:
        """Record a finished step of `images` images (all processes together)."""
        now = time.perf_counter()
        kept = self.window if self.step_in_epoch >= SKIPPED_STEPS else self.fallback
        kept.append((images, now - self.last_step))
        self.last_step = now
        self.step_in_epoch += 1

    def test_done(self, seconds: float) -> None:
        self.test_seconds = seconds

    def step_due(self, step: int, steps: int) -> bool:
        """Whether step `step` (0-based) of `steps` should report: at most every
        `interval` seconds, and always an epoch's first and last step."""
        now = time.perf_counter()
        if now - self.last_event >= self.interval or step in (0, steps - 1):
            self.last_event = now
            return True
        return False

    def rate(self) -> float | None:
        """Images per second over the recent window (the skipped steps only while nothing
        else is known: an epoch of two steps); None before any step."""
        steps = self.window or self.fallback
        seconds = sum(duration for _, duration in steps)
        return sum(images for images, _ in steps) / seconds if seconds > 0 else None

    def time_left(self, steps_left: int, tests_left: int) -> float | None:
        """Seconds left: the training images of `steps_left` steps at `rate()`, plus
        `tests_left` test passes; None before the rate is known."""
        rate = self.rate()
        if rate is None:
            return None
        images_left = steps_left / self.steps_per_epoch * self.images_per_epoch
        test = (self.test_seconds if self.test_seconds is not None
                else self.test_images * TEST_IMAGE_SHARE / rate)
        return images_left / rate + tests_left * test


def machine_load() -> tuple[float, int] | None:
    """(1-minute load average, CPU cores this process may use), or None where the system
    has no load average."""
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return load, cores


def busy_note(load: tuple[float, int] | None) -> str | None:
    """What a page says when the CPU is oversubscribed (a load average above the cores):
    the measured rate is shared, and the run will share the CPU too while that lasts
    (issue 18: at a load of about 9 a run took 7.5 min for an estimated 2). None otherwise."""
    if load is None or load[0] <= load[1]:
        return None
    return f"the machine is busy (load {load[0]:.1f} on {load[1]} cores): the time may stretch"
