"""Durations and byte sizes as a person reads them (no torch): the library's estimates and
the app's pages print them the same way."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """Whole seconds up to 90 s, whole minutes up to 90 min, then hours: '45 s', '12 min',
    '2.5 h' (an estimate's precision, not a stopwatch's)."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def byte_size(num_bytes: float) -> str:
    """Decimal units (as torchinfo and download pages print them), the largest that keeps
    the number at 1 or more: 100.1 MB, 32.8 GB, 512 kB."""
    for factor, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB")):
        if abs(num_bytes) >= factor:
            return f"{num_bytes / factor:,.1f} {unit}"
    if abs(num_bytes) >= 1e3:
        return f"{num_bytes / 1e3:,.0f} kB"
    return f"{num_bytes:,} B"
