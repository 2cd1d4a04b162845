"""Honest statistics over seeds: a mean with its Student's t 95 % interval, the Welch interval
of a difference, and how many seeds a difference of a given size would need.

No scipy: Student's t distribution comes from the regularised incomplete beta function
(Numerical Recipes, 3rd ed., Sec. 6.4 and 6.14: `F(t) = 1 - I_x(df/2, 1/2) / 2` for t >= 0,
x = df / (df + t^2)), evaluated by Lentz's continued fraction, and its quantile by bisection.
Any real df > 0 works, which Welch's interval needs. The tests check it against the textbook
table (t(0.975, 2) = 4.3027, t(0.975, 4) = 2.7764, ...) and the closed forms for df = 1
(Cauchy) and df = 2.

The rule for "supported" (written once, here): a difference between two points is supported
when the 95 % Welch interval of the difference of their means excludes 0. With fewer than
two seeds on either side there is no interval, and the difference is neither supported nor
refuted: `supported` is None.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

CONFIDENCE = 0.95
# The accuracy difference `seeds_needed` sizes for: two points (0.02 on the 0-1 scale).
DEFAULT_DELTA = 0.02
_MAX_SEEDS = 10_000


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz, NR Sec. 6.4 `betacf`)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x!r}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (any real df > 0)."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (Student's t, `df` > 0), to about 1e-12."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * max(1.0, high):
            break
    return 0.5 * (low + high)


def critical_t(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value: t((1 + confidence) / 2, df)."""
    return t_quantile(0.5 + confidence / 2.0, df)


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else math.nan
    return mean, variance


def summary(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """{"mean", "ci95": [low, high] or None, "sd", "n"} of the values (one per seed).

    The interval is mean +- t(df = n - 1) * sd / sqrt(n); with one value there is none
    (null), and with none the mean is null too."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": None, "sd": None, "n": 0}
    mean, variance = _mean_var(values)
    if n < 2:
        return {"mean": mean, "ci95": None, "sd": None, "n": 1}
    sd = math.sqrt(variance)
    half = critical_t(n - 1, confidence) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "sd": sd, "n": n}


def difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
               ) -> dict[str, Any]:
    """mean(a) - mean(b) with its Welch 95 % interval and whether it is supported.

    Welch-Satterthwaite: se^2 = s_a^2/n_a + s_b^2/n_b, df = se^4 / sum((s_i^2/n_i)^2 /
    (n_i - 1)). `supported` is True when the interval excludes 0, False when it holds 0,
    None when either side has fewer than two values (no interval)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        return {"difference": None, "ci95": None, "df": None, "supported": None}
    (mean_a, var_a), (mean_b, var_b) = _mean_var(a), _mean_var(b)
    delta = mean_a - mean_b
    if len(a) < 2 or len(b) < 2:
        return {"difference": delta, "ci95": None, "df": None, "supported": None}
    parts = (var_a / len(a), var_b / len(b))
    se = math.sqrt(sum(parts))
    if se == 0.0:  # every seed gave the same number on both sides: the interval is a point
        return {"difference": delta, "ci95": [delta, delta], "df": None,
                "supported": delta != 0.0}
    df = se ** 4 / sum(part * part / (len(side) - 1) for part, side in zip(parts, (a, b)))
    half = critical_t(df, confidence) * se
    low, high = delta - half, delta + half
    return {"difference": delta, "ci95": [low, high], "df": df,
            "supported": low > 0.0 or high < 0.0}


def pooled_sd(groups: Sequence[Sequence[float]]) -> float | None:
    """The within-group standard deviation pooled over groups of two or more values."""
    total, df = 0.0, 0
    for group in groups:
        if len(group) > 1:
            _, variance = _mean_var([float(v) for v in group])
            total += variance * (len(group) - 1)
            df += len(group) - 1
    return math.sqrt(total / df) if df else None


def seeds_needed(sd: float | None, delta: float = DEFAULT_DELTA,
                 confidence: float = CONFIDENCE) -> int | None:
    """Seeds per point for a difference of `delta` to make the 95 % interval of a difference
    of two points exclude 0, at spread `sd` per seed: the smallest n with
    t(df = 2n - 2) * sd * sqrt(2 / n) < delta, i.e. n > 2 (t sd / delta)^2 with t taken at
    the n it gives (iterated from the normal value). A precision target, not a power
    calculation: a true difference of exactly delta is then found about half the time.
    None without a spread (fewer than two seeds anywhere) or beyond 10,000 seeds; 2 at
    least."""
    if sd is None or not math.isfinite(sd):
        return None
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    if sd == 0.0:
        return 2

    def enough(n: int) -> bool:
        return critical_t(2 * n - 2, confidence) * sd * math.sqrt(2.0 / n) < delta

    # The left side falls as n grows: double until enough, then bisect for the smallest n.
    low, high = 1, 2
    while not enough(high):
        if high >= _MAX_SEEDS:
            return None
        low, high = high, min(2 * high, _MAX_SEEDS)
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def verdict(point: dict[str, Any], measure: str = "accuracy") -> str:
    """A point against the best, in words: "best", "worse (supported)" (the best is better
    beyond the intervals), "gap unsupported" (the intervals allow no difference), or ""
    (no interval: fewer than two seeds on a side). The text, the CSV and the app say it so."""
    if measure not in point.get("vs_best", {}):
        return ""
    versus = point["vs_best"][measure]
    if versus is None:
        return "best"
    return {True: "worse (supported)", False: "gap unsupported", None: ""}[versus["supported"]]
