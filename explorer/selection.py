"""What the user has chosen: one ResNeXtConfig plus the input side, shared by every tab.

The Architecture tab's controls are turned into a `Selection` here (and only here), so the
same validation answers the browser, the HTTP API and the tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import resnext
from resnext import CIFAR_DEPTHS, IMAGENET_DEPTHS, ResNeXtConfig

from resnext.validation import whole_number

IMAGE_SIZE_RANGE = (16, 1024)
CUSTOM = "custom"
# Depth choices of the depth control: four-stage ImageNet layouts and the CIFAR 29.
DEPTH_CHOICES = [str(d) for d in sorted({**IMAGENET_DEPTHS, **CIFAR_DEPTHS})] + [CUSTOM]


@dataclass(frozen=True)
class Selection:
    config: ResNeXtConfig
    image_size: int

    @property
    def preset(self) -> str:
        return resnext.preset_name(self.config) or CUSTOM

    def to_json(self) -> str:
        return json.dumps({**self.config.to_dict(), "image_size": self.image_size}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Selection":
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})")
        if not isinstance(data, dict):
            raise ValueError("the config must be a JSON object such as {\"cardinality\": 32, ...}")
        data = dict(data)
        image_size = check_image_size(data.pop("image_size", 224))
        return cls(ResNeXtConfig.from_dict(data), image_size)


def default_selection() -> Selection:
    return Selection(resnext.PRESETS["resnext50_32x4d"], 224)


def check_image_size(value: Any) -> int:
    return whole_number("input resolution", value, *IMAGE_SIZE_RANGE)


def parse_blocks(text: str) -> tuple[int, ...]:
    """'3, 4, 6, 3' (or '3 4 6 3', '[3,4,6,3]') -> (3, 4, 6, 3); the config checks the ranges."""
    if not isinstance(text, str):
        raise ValueError(f"blocks per stage must be text such as '3, 4, 6, 3', got {text!r}")
    parts = [p for p in re.split(r"[\s,;x×\[\]()]+", text.strip()) if p]
    if not parts:
        raise ValueError("blocks per stage is empty: give one number per stage, e.g. '3, 4, 6, 3'")
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
    for depth, layout in {**IMAGENET_DEPTHS, **CIFAR_DEPTHS}.items():
        if layout == blocks:
            return str(depth)
    return CUSTOM


def blocks_for_depth(depth: str) -> tuple[int, ...] | None:
    if depth == CUSTOM:
        return None
    value = int(depth)
    return {**IMAGENET_DEPTHS, **CIFAR_DEPTHS}.get(value)


def _as_int(value: Any) -> Any:
    # Sliders and number boxes send floats such as 32.0; the config wants ints and says so
    # itself for anything else (NaN, 2.5, text).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def selection_from_controls(cardinality: Any, bottleneck_width: Any, blocks_text: str, stem: str,
                            block_form: str, grouped_reduce: bool, num_classes: Any,
                            image_size: Any, keep_complexity: bool = False) -> Selection:
    """Turn the Architecture tab's control values into a Selection (ValueError if invalid).

    With `keep_complexity`, d is not read from its control but set from C by the paper's
    complexity-preserving rule (Table 2).
    """
    if not isinstance(keep_complexity, bool):
        raise ValueError(f"keep complexity must be True or False, got {keep_complexity!r}")
    cardinality = _as_int(cardinality)
    if keep_complexity:
        width = resnext.preserving_width(cardinality) if isinstance(cardinality, int) else cardinality
    else:
        width = _as_int(bottleneck_width)
    config = ResNeXtConfig(
        cardinality=cardinality,
        bottleneck_width=width,
        stage_blocks=parse_blocks(blocks_text),
        num_classes=_as_int(num_classes),
        stem=stem,
        block_form=block_form,
        grouped_reduce=grouped_reduce,
    )
    return Selection(config, check_image_size(image_size))
