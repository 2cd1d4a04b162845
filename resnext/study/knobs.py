"""The knobs a study turns, their values, and the network each value gives.

A knob changes one field of the base network (`ResNeXtConfig`); "cardinality" with keep
complexity also sets the bottleneck width d that keeps the network's cost that of the base
network (the paper's Table 2 rule, solved against the base network's own blocks, so it holds
at any base width, stem or depth). Values arrive as text from the CLI (`--values 1,2,4,8,32`)
or as lists from Python; each gives one config, validated by `ResNeXtConfig` itself.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..complexity import complexity
from ..config import (
    BLOCK_FORMS,
    BOTTLENECK_WIDTH_RANGE,
    GROUP_WIDTH_MAX,
    WIDTH_REFERENCE_PLANES,
    ResNeXtConfig,
    blocks_for_depth,
    depth_of,
)

# knob -> (what it is, the config field it sets, short label used in run folder names)
KNOBS: dict[str, tuple[str, str, str]] = {
    "cardinality": ("C, the number of paths per block", "cardinality", "C"),
    "bottleneck_width": ("d, the width of each path", "bottleneck_width", "d"),
    "depth": ("layers on the main path (3 per block + 2)", "stage_blocks", "depth"),
    "blocks": ("blocks per stage, e.g. 3,4,6,3", "stage_blocks", "blocks"),
    "base_planes": ("stem channels and first-stage planes", "base_planes", "planes"),
    "block_form": ("the drawing of Fig. 3 the block is built as (a, b, c)", "block_form", "form"),
}
# Keep-complexity keeps the cost by what the paper's Table 2 keeps: parameters. Solved on the
# whole network's parameter count (resnext.complexity) it reproduces Table 2 exactly on
# ResNet-50 (C = 1, 2, 4, 8, 32 -> d = 64, 40, 24, 14, 4); solved on MACs it gives d = 13
# for C = 8. MACs stay within ~4 % there and every point reports both.
KEEP_BY = "params"
MAX_VALUES = 64


def parse_values(knob: str, text: str | Sequence[Any]) -> tuple[Any, ...]:
    """The knob's values from "1,2,4" (blocks: "1,1,1;2,2,2") or a list; duplicates refused."""
    if knob not in KNOBS:
        raise ValueError(f"--knob must be one of {', '.join(KNOBS)}, got {knob!r}")
    if isinstance(text, str):
        separator = ";" if knob == "blocks" else ","
        items: list[Any] = [item.strip() for item in text.split(separator) if item.strip()]
    else:
        items = list(text)
    if not items:
        raise ValueError(f"--values is empty: give the {knob} values, e.g. "
                         f"{'1,1,1;2,2,2' if knob == 'blocks' else '1,2,4'}")
    if len(items) > MAX_VALUES:
        raise ValueError(f"--values holds {len(items)} values; at most {MAX_VALUES}")
    values = tuple(_one_value(knob, item) for item in items)
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"--values repeats {', '.join(repeated)}: each value is one point")
    return values


def _one_value(knob: str, item: Any) -> Any:
    if knob == "block_form":
        if item not in BLOCK_FORMS:
            raise ValueError(f"--values: a block form must be one of {', '.join(BLOCK_FORMS)}, "
                             f"got {item!r}")
        return item
    if knob == "blocks":
        text = item if isinstance(item, str) else ",".join(str(v) for v in item)
        if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", text):
            raise ValueError(f"--values: blocks per stage must look like 3,4,6,3, got {item!r}")
        return ",".join(str(int(v)) for v in text.split(","))
    if isinstance(item, str):
        if not re.fullmatch(r"\d+", item):
            raise ValueError(f"--values: {knob} values must be whole numbers, got {item!r}")
        return int(item)
    if isinstance(item, bool) or not isinstance(item, int):
        raise ValueError(f"--values: {knob} values must be whole numbers, got {item!r}")
    return item


def blocks_of(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def stage_blocks_for_depth(base: ResNeXtConfig, depth: int) -> tuple[int, ...]:
    """The stage layout of `depth` with the base network's number of stages: the standard
    one (resnext.config's tables) when it has that many stages, else the blocks spread
    evenly over the stages when they divide evenly."""
    stages = len(base.stage_blocks)
    standard = blocks_for_depth(depth)
    if standard is not None and len(standard) == stages:
        return standard
    blocks, rest = divmod(depth - 2, 3)
    if depth < 2 or rest or blocks % stages or blocks < stages:
        raise ValueError(
            f"depth {depth} has no layout with {stages} stages (depth = 3 x blocks "
            f"+ 2 with blocks a multiple of {stages}, e.g. {depth_of((1,) * stages)} or "
            f"{depth_of((2,) * stages)}); use --knob blocks to give the layout itself")
    return (blocks // stages,) * stages


def config_for(base: ResNeXtConfig, knob: str, value: Any, keep_complexity: bool = False,
               image_size: int = 224) -> ResNeXtConfig:
    """The base network with the knob at `value` (validated by ResNeXtConfig)."""
    try:
        if knob == "cardinality":
            width = (matching_width(base, value, image_size) if keep_complexity
                     else base.bottleneck_width)
            return base.replace(cardinality=value, bottleneck_width=width)
        if knob == "depth":
            return base.replace(stage_blocks=stage_blocks_for_depth(base, value))
        if knob == "blocks":
            return base.replace(stage_blocks=blocks_of(value))
        return base.replace(**{KNOBS[knob][1]: value})
    except ValueError as error:
        raise ValueError(f"--values: {knob} = {value} gives no valid network: {error}") from None


def width_range(base: ResNeXtConfig, cardinality: int) -> tuple[int, int]:
    """The narrowest d whose first-stage group width is not 0 (ResNeXtConfig's rule) and the
    widest the config takes at this C."""
    narrowest = -(-WIDTH_REFERENCE_PLANES // base.base_planes)
    widest = min(BOTTLENECK_WIDTH_RANGE[1], GROUP_WIDTH_MAX // cardinality)
    if narrowest > widest:
        raise ValueError(f"no bottleneck width fits cardinality {cardinality} at base_planes "
                         f"{base.base_planes} (d must be >= {narrowest} and C x d <= "
                         f"{GROUP_WIDTH_MAX})")
    return narrowest, widest


def _cost(cfg: ResNeXtConfig, image_size: int, by: str) -> int:
    return getattr(complexity(cfg, image_size), by)


def largest_width(base: ResNeXtConfig, cardinality: int, budget: int, image_size: int,
                  by: str = "macs") -> int | None:
    """The largest d whose network (base with C = cardinality) costs at most `budget`, or
    None when even the narrowest costs more. Cost grows with d (every conv of a block widens
    with the group width C * floor(planes * d / 64)), so a bisection finds it."""
    low, high = width_range(base, cardinality)
    at = (lambda d: _cost(base.replace(cardinality=cardinality, bottleneck_width=d),
                          image_size, by))
    if at(low) > budget:
        return None
    if at(high) <= budget:
        return high
    while high - low > 1:  # invariant: at(low) <= budget < at(high)
        middle = (low + high) // 2
        if at(middle) <= budget:
            low = middle
        else:
            high = middle
    return low


def matching_width(base: ResNeXtConfig, cardinality: int, image_size: int = 224,
                   by: str = KEEP_BY) -> int:
    """The d whose network (base with C = cardinality) costs closest to the base network's,
    counted exactly over the base's own blocks, stem and width (`resnext.complexity`);
    of two equally close, the cheaper, and of several d that give the same network (the
    group width floors planes * d / 64), the narrowest."""
    target = _cost(base, image_size, by)
    low, high = width_range(base, cardinality)
    at = (lambda d: _cost(base.replace(cardinality=cardinality, bottleneck_width=d),
                          image_size, by))
    below = largest_width(base, cardinality, target, image_size, by)
    if below is None:
        return low  # even the narrowest path costs more than the base: take it
    if below < high and at(below + 1) - target < target - at(below):
        return below + 1  # the narrowest d above the target (below is the widest under it)
    cheaper = largest_width(base, cardinality, at(below) - 1, image_size, by)
    return low if cheaper is None else cheaper + 1


def value_label(knob: str, value: Any) -> str:
    """The value as it appears in a run folder's name: C4, d16, depth29, blocks1-1-1."""
    return f"{KNOBS[knob][2]}{str(value).replace(',', '-')}"
