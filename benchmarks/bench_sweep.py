"""How long a Complexity-tab sweep takes compared with one `resnext.complexity` call.

A sweep is one `complexity` call per point (arithmetic, no weights), so its cost should be
about N single calls. Everything is measured uncached (the library memoises; its cache is
cleared before each timed run), median of repeats, in one run so the ratios are comparable.

    python -m benchmarks.bench_sweep
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import resnext
from explorer.selection import Selection
from explorer.complexity import charts
from resnext.complexity import _complexity


def median_s(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _complexity.cache_clear()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    resnext50 = Selection(resnext.PRESETS["resnext50_32x4d"], 224)
    depth200 = Selection(resnext50.config.replace(stage_blocks=resnext.IMAGENET_DEPTHS[200]), 224)
    single_50 = median_s(lambda: resnext.complexity(resnext50.config, 224), 30)
    single_200 = median_s(lambda: resnext.complexity(depth200.config, 224), 15)
    cases = [
        ("tab default: C 1..64 geometric, keep complexity, depth 50", resnext50,
         charts.SweepRequest("cardinality", 1, 64, 24, "geometric", True), single_50, 7),
        ("C 1..1024 geometric (24 points), depth 200", depth200,
         charts.SweepRequest("cardinality", 1, 1024, 24, "geometric", False), single_200, 5),
        ("C 1..1024 every value (1024 points), depth 200", depth200,
         charts.SweepRequest("cardinality", 1, 1024, 1024, "linear", False), single_200, 3),
    ]
    print(f"one complexity call, uncached: depth 50 {single_50 * 1e3:.2f} ms, "
          f"depth 200 {single_200 * 1e3:.2f} ms\n")
    print(f"{'sweep':<58} {'points':>6} {'data ms':>9} {'data+figure':>12} {'× one call':>11}")
    for label, selection, request, single, repeats in cases:
        points = len(charts.sweep_data(selection, request)["points"])
        data = median_s(lambda: charts.sweep_data(selection, request), repeats)
        full = median_s(lambda: charts.sweep_figure(charts.sweep_data(selection, request))
                        .to_json(), repeats)
        print(f"{label:<58} {points:>6} {data * 1e3:9.1f} {full * 1e3:9.1f} ms "
              f"{full / single:10.0f}x")


if __name__ == "__main__":
    main()
