"""What the user has chosen: one ResNeXtConfig plus the input side, shared by every tab.

The Architecture tab's controls are turned into a `Selection` here (and only here), so the
same validation answers the browser, the HTTP API, a shared link and the tests. Each
control's limits are the library's own (`resnext.config`), so a control, the JSON paste
and the API can never disagree about what is allowed.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import resnext
from resnext import DEPTHS, ResNeXtConfig
from resnext.config import (BASE_PLANES_RANGE, BLOCKS_PER_STAGE_RANGE, BOTTLENECK_WIDTH_RANGE,
                            CARDINALITY_RANGE, NUM_CLASSES_RANGE, STAGES_RANGE)
from resnext.validation import whole_number

__all__ = [
    "BASE_PLANES_RANGE", "BLOCKS_PER_STAGE_RANGE", "BOTTLENECK_WIDTH_RANGE", "CARDINALITY_RANGE",
    "CIFAR_SETTING", "CUSTOM", "DEPTH_CHOICES", "IMAGENET_SETTING", "IMAGE_SIZE_RANGE",
    "NUM_CLASSES_RANGE", "STAGES_RANGE", "Selection", "check_image_size", "default_selection",
    "depth_choice", "format_blocks", "parse_blocks", "selection_from_controls",
]

IMAGE_SIZE_RANGE = (16, 1024)
CUSTOM = "custom"
# Depth choices of the depth control: four-stage ImageNet layouts and the CIFAR 29.
DEPTH_CHOICES = [str(d) for d in DEPTHS] + [CUSTOM]
# What a depth choice brings besides its layout: the paper trains its CIFAR nets on 32x32
# images of 10 (or 100) classes with the 3x3 stem (Sec. 5.2, Table 7), its ImageNet nets on
# 224x224 crops of 1000 classes (Sec. 5.1).
CIFAR_SETTING = {"stem": "cifar", "image_size": 32, "num_classes": 10}
IMAGENET_SETTING = {"stem": "imagenet", "image_size": 224, "num_classes": 1000}
# The URL query parameter that carries a Selection (the Architecture tab's link).
LINK_PARAMETER = "config"


@dataclass(frozen=True)
class Selection:
    config: ResNeXtConfig
    image_size: int

    @property
    def preset(self) -> str:
        return resnext.preset_name(self.config) or CUSTOM

    def to_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "image_size": self.image_size}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Selection":
        if not isinstance(text, str):
            raise ValueError(f"the config must be JSON text, got {type(text).__name__}")
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})")
        if not isinstance(data, dict):
            raise ValueError("the config must be a JSON object such as {\"cardinality\": 32, ...}")
        data = dict(data)
        image_size = check_image_size(data.pop("image_size", 224))
        return cls(ResNeXtConfig.from_dict(data), image_size)

    def link_query(self) -> str:
        """'?config=...': the fields that differ from the default network, as compact JSON.

        Opening the app with it puts this same network on screen (`from_link`).
        """
        default = default_selection().to_dict()
        changed = {k: v for k, v in self.to_dict().items() if default.get(k) != v}
        text = json.dumps(changed, separators=(",", ":"))
        return "?" + urllib.parse.urlencode({LINK_PARAMETER: text})

    @classmethod
    def from_link(cls, query: dict[str, str]) -> "Selection | None":
        """The Selection a link's query parameters hold (None when there is none)."""
        text = query.get(LINK_PARAMETER)
        if not text:
            return None
        changes = json.loads(text) if text.strip().startswith("{") else None
        if not isinstance(changes, dict):
            raise ValueError(f"the link's {LINK_PARAMETER}= is not a JSON object: {text[:80]!r}")
        return cls.from_json(json.dumps({**default_selection().to_dict(), **changes}))


def default_selection() -> Selection:
    return Selection(resnext.PRESETS["resnext50_32x4d"], 224)


def check_image_size(value: Any) -> int:
    return whole_number("input resolution", value, *IMAGE_SIZE_RANGE)


def parse_blocks(text: str) -> tuple[int, ...]:
    """'3, 4, 6, 3' (or '3 4 6 3', '[3,4,6,3]') -> (3, 4, 6, 3); the config checks the ranges.

    An empty entry ('3,,4') is refused, not skipped: the user meant some number there.
    """
    if not isinstance(text, str):
        raise ValueError(f"blocks per stage must be text such as '3, 4, 6, 3', got {text!r}")
    inner = text.strip().strip("[]()").strip()
    if not inner:
        raise ValueError("blocks per stage is empty: give one number per stage, e.g. '3, 4, 6, 3'")
    parts = [p.strip() for p in re.split(r"[,;]", inner)]
    if len(parts) == 1:
        parts = inner.split()
    if any(not p for p in parts):
        raise ValueError(f"blocks per stage '{text}' has an empty entry: give one number per "
                         f"stage, e.g. '3, 4, 6, 3'")
    blocks = []
    for part in parts:
        if not re.fullmatch(r"\d{1,6}", part):
            raise ValueError(f"blocks per stage must be whole numbers such as '3, 4, 6, 3'; "
                             f"'{part}' is not one")
        blocks.append(int(part))
    return tuple(blocks)


def format_blocks(blocks: tuple[int, ...]) -> str:
    return ", ".join(str(b) for b in blocks)


def depth_choice(blocks: tuple[int, ...]) -> str:
    """The depth control's value for a stage layout: its depth if it is a standard one."""
    for depth, layout in DEPTHS.items():
        if layout == blocks:
            return str(depth)
    return CUSTOM


def selection_from_controls(cardinality: Any, bottleneck_width: Any, blocks_text: str, stem: str,
                            block_form: str, grouped_reduce: bool, num_classes: Any,
                            image_size: Any, keep_complexity: bool = False,
                            base_planes: Any = resnext.config.BASE_PLANES) -> Selection:
    """Turn the Architecture tab's control values into a Selection (ValueError if invalid).

    Each number is checked against the one set of limits here, under the control's own name.
    With `keep_complexity`, d is not read from its control but set from C by the paper's
    complexity-preserving rule (Table 2).
    """
    if not isinstance(keep_complexity, bool):
        raise ValueError(f"keep complexity must be True or False, got {keep_complexity!r}")
    cardinality = whole_number("cardinality C", cardinality, *CARDINALITY_RANGE)
    if keep_complexity:
        width = resnext.preserving_width(cardinality)
    else:
        width = whole_number("bottleneck width d", bottleneck_width, *BOTTLENECK_WIDTH_RANGE)
    config = ResNeXtConfig(
        cardinality=cardinality,
        bottleneck_width=width,
        stage_blocks=parse_blocks(blocks_text),
        num_classes=whole_number("classes", num_classes, *NUM_CLASSES_RANGE),
        stem=stem,
        block_form=block_form,
        grouped_reduce=grouped_reduce,
        base_planes=whole_number("base width", base_planes, *BASE_PLANES_RANGE),
    )
    return Selection(config, check_image_size(image_size))
