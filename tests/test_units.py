"""Durations and byte sizes, printed one way by the library and the app."""

import pytest

from resnext.units import byte_size, duration


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (-3, "0 s"), (44.6, "45 s"), (89.4, "89 s"), (90, "2 min"), (725, "12 min"),
    (89 * 60, "89 min"), (90 * 60, "1.5 h"), (9000, "2.5 h")])
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("num_bytes, text", [
    (0, "0 B"), (999, "999 B"), (1_000, "1 kB"), (512_300, "512 kB"), (1_000_000, "1.0 MB"),
    (100_115_616, "100.1 MB"), (32_796_600_000, "32.8 GB"), (2.5e12, "2.5 TB")])
def test_byte_size(num_bytes, text):
    assert byte_size(num_bytes) == text


def test_the_estimate_and_the_app_print_alike():
    from explorer.shared import formatting
    from resnext.train import Estimate

    assert formatting.duration is duration and formatting.byte_size is byte_size
    estimate = Estimate(seconds=725, peak_bytes=512_300, macs_per_second=1.0, step_seconds=0.1,
                        measured_batch=8)
    assert estimate.phrase == "about 12 min, peak memory about 512 kB"
