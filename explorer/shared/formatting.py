"""Numbers as a person reads them: exact counts with separators, sizes with units."""

from __future__ import annotations

from resnext.units import byte_size, duration  # noqa: F401  (one way to print them)


def count(value: int) -> str:
    """25028904 -> '25,028,904'."""
    return f"{value:,}"


def scaled(value: float, unit: str = "") -> str:
    """4230479872 -> '4.23 G' (SI prefixes; three significant decimals for G and above)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}" if factor < 1e9 else \
                f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".strip()


def percent_change(value: float, baseline: float) -> str:
    if baseline == 0:
        return "n/a"
    change = 100.0 * (value - baseline) / baseline
    return f"{change:+.1f} %"
