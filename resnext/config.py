"""The one configuration object that describes a ResNeXt network.

Every part of the project (builder, complexity arithmetic, app, benchmarks) takes a
`ResNeXtConfig`; nothing else describes a network. It is frozen (hashable, so it can key
caches) and validates itself on construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .validation import whole_number

# Limits. They are generous enough for every network in the paper and for sweeps, and
# small enough that arithmetic on them stays exact and quick. Building weights for the
# largest allowed network is refused by the app's memory budget, not here.
CARDINALITY_RANGE = (1, 1024)
BOTTLENECK_WIDTH_RANGE = (1, 1024)
# C·d of the first stage; later stages double it. 16384 is 128x the paper's widest (32x4d).
GROUP_WIDTH_MAX = 16384
STAGES_RANGE = (1, 6)
BLOCKS_PER_STAGE_RANGE = (1, 64)
NUM_CLASSES_RANGE = (1, 100_000)
STEMS = ("imagenet", "cifar")
BLOCK_FORMS = ("a", "b", "c")

# Width of the stem's conv and of the first stage's "planes" (paper Table 1: conv1 has 64
# channels; conv2 has planes 64, later stages 128, 256, 512, each block outputs 4x planes).
# `base_planes` makes it a knob, so networks small enough to train in minutes exist; 64 is
# the paper's and every preset's value.
BASE_PLANES = 64
BASE_PLANES_RANGE = (1, 1024)
STEM_WIDTH = BASE_PLANES  # the stem's channels at the default base_planes
EXPANSION = 4
# Group width = C * floor(planes * d / 64): d is defined at planes 64 (Table 1, conv2), so
# this 64 stays fixed when base_planes changes.
WIDTH_REFERENCE_PLANES = 64

# Stage layouts by depth. Depth counts the weighted layers on the main path:
# 3 convs per block + stem conv + fc (paper Table 1: 1 + 3*(3+4+6+3) + 1 = 50).
# Every layout is written here once; presets, the app and the tests read these.
IMAGENET_DEPTHS: Mapping[int, tuple[int, ...]] = MappingProxyType({
    26: (2, 2, 2, 2),
    38: (3, 3, 3, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
})
# Paper Sec. 5.2 / Table 7: ResNeXt-29 for CIFAR has 3 stages of 3 blocks.
CIFAR_DEPTHS: Mapping[int, tuple[int, ...]] = MappingProxyType({29: (3, 3, 3)})
# Every standard depth (the two tables share no depth), for depth pickers.
DEPTHS: Mapping[int, tuple[int, ...]] = MappingProxyType(
    dict(sorted({**IMAGENET_DEPTHS, **CIFAR_DEPTHS}.items())))


def depth_of(stage_blocks: tuple[int, ...]) -> int:
    """Number of weighted layers on the main path: 3 per bottleneck + stem conv + fc."""
    return 3 * sum(stage_blocks) + 2


def blocks_for_depth(depth: int) -> tuple[int, ...] | None:
    """The standard stage layout of `depth` (ImageNet or CIFAR), or None if there is none."""
    return DEPTHS.get(depth)


@dataclass(frozen=True)
class ResNeXtConfig:
    """A ResNeXt network (Xie et al., CVPR 2017), described by the paper's hyperparameters."""

    # C: number of parallel paths in each block (paper Sec. 3.3); C = 1 is a ResNet.
    cardinality: int = 32
    # d: width of each path in the first stage; later stages scale it with planes
    # (group width = C * floor(planes * d / 64), as torchvision and the paper's Table 1).
    bottleneck_width: int = 4
    # Bottleneck blocks per stage; 4 stages for ImageNet, 3 for the paper's CIFAR nets.
    stage_blocks: tuple[int, ...] = (3, 4, 6, 3)
    num_classes: int = 1000
    # "imagenet": 7x7/2 conv + 3x3/2 max-pool (Table 1); "cifar": 3x3/1 conv, no pool (Sec. 5.2).
    stem: str = "imagenet"
    # Which drawing of Fig. 3 the block is built as; all three compute the same function.
    block_form: str = "c"
    # The seed blog's code groups the first 1x1 conv as well (groups=C); the paper's is dense.
    grouped_reduce: bool = False
    # Zero the last BN's gamma in each block so it starts as identity (Goyal et al. 2017);
    # torchvision's `zero_init_residual`. Off by default, as in torchvision.
    zero_init_residual: bool = False
    # Channels of the stem and planes of the first stage (Table 1: 64); later stages double
    # it. Smaller values give networks that train in minutes on a CPU.
    base_planes: int = BASE_PLANES

    def __post_init__(self) -> None:
        # integral_floats=False: the frozen config keeps exactly what it was given, so 4.0
        # is refused with "pass 4" rather than silently stored as a float.
        whole_number("cardinality", self.cardinality, *CARDINALITY_RANGE, integral_floats=False)
        whole_number("bottleneck_width", self.bottleneck_width, *BOTTLENECK_WIDTH_RANGE,
                     integral_floats=False)
        whole_number("base_planes", self.base_planes, *BASE_PLANES_RANGE, integral_floats=False)
        group_width = self.cardinality * self.bottleneck_width
        if group_width > GROUP_WIDTH_MAX:
            raise ValueError(
                f"cardinality x bottleneck_width must be at most {GROUP_WIDTH_MAX}, got "
                f"{self.cardinality} x {self.bottleneck_width} = {group_width}"
            )
        blocks = self.stage_blocks
        if isinstance(blocks, list):
            blocks = tuple(blocks)
            object.__setattr__(self, "stage_blocks", blocks)
        if not isinstance(blocks, tuple):
            raise ValueError(
                f"stage_blocks must be a tuple of {STAGES_RANGE[0]}-{STAGES_RANGE[1]} integers, "
                f"got {blocks!r}"
            )
        if not STAGES_RANGE[0] <= len(blocks) <= STAGES_RANGE[1]:
            raise ValueError(
                f"stage_blocks must have {STAGES_RANGE[0]} to {STAGES_RANGE[1]} stages, "
                f"got {len(blocks)}: {blocks!r}"
            )
        for index, count in enumerate(blocks):
            whole_number(f"stage_blocks[{index}]", count, *BLOCKS_PER_STAGE_RANGE,
                         integral_floats=False)
        whole_number("num_classes", self.num_classes, *NUM_CLASSES_RANGE, integral_floats=False)
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {self.stem!r}")
        if self.block_form not in BLOCK_FORMS:
            raise ValueError(f"block_form must be one of {BLOCK_FORMS}, got {self.block_form!r}")
        for flag in ("grouped_reduce", "zero_init_residual"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        self._check_group_width()
        if self.grouped_reduce and self.stem_width % self.cardinality:
            # A grouped 1x1 splits its input into C equal slices; the stem gives base_planes
            # channels (64 in the paper), and every later input is a multiple of it.
            raise ValueError(
                f"grouped_reduce needs a cardinality that divides {self.stem_width} (the stem's "
                f"channels, base_planes), got cardinality {self.cardinality}"
            )

    def _check_group_width(self) -> None:
        # The first stage has the fewest planes, so its group width is the first to reach 0.
        d, base = self.bottleneck_width, self.base_planes
        if base * d >= WIDTH_REFERENCE_PLANES:
            return
        smallest_d = -(-WIDTH_REFERENCE_PLANES // base)  # ceil(64 / base_planes)
        smallest_base = -(-WIDTH_REFERENCE_PLANES // d)
        fixes = []
        if smallest_d <= BOTTLENECK_WIDTH_RANGE[1]:
            fixes.append(f"bottleneck_width >= {smallest_d}")
        if smallest_base <= BASE_PLANES_RANGE[1]:
            fixes.append(f"base_planes >= {smallest_base}")
        raise ValueError(
            f"the first stage's group width would be 0: C x floor(base_planes x d / "
            f"{WIDTH_REFERENCE_PLANES}) = {self.cardinality} x floor({base} x {d} / "
            f"{WIDTH_REFERENCE_PLANES}) = 0; use {' or '.join(fixes)}"
        )

    # Derived quantities -------------------------------------------------------------

    @property
    def depth(self) -> int:
        return depth_of(self.stage_blocks)

    @property
    def stem_width(self) -> int:
        """Output channels of the stem's conv: base_planes (Table 1: 64)."""
        return self.base_planes

    def planes(self, stage: int) -> int:
        """Bottleneck 'planes' of stage `stage` (0-based): 64, 128, 256, ... (Table 1)."""
        return self.base_planes * 2**stage

    def group_width(self, stage: int) -> int:
        """Channels of the grouped 3x3 conv in `stage`: C * floor(planes * d / 64)."""
        return self.cardinality * (self.planes(stage) * self.bottleneck_width
                                   // WIDTH_REFERENCE_PLANES)

    def out_channels(self, stage: int) -> int:
        return EXPANSION * self.planes(stage)

    @property
    def name(self) -> str:
        """A short human name such as 'ResNeXt-50 (32x4d)'."""
        prefix = "ResNet" if self.cardinality == 1 else "ResNeXt"
        name = f"{prefix}-{self.depth} ({self.cardinality}x{self.bottleneck_width}d)"
        if self.base_planes != BASE_PLANES:
            name = f"{name[:-1]}, {self.base_planes} base planes)"
        return name

    # (De)serialisation for the app's copy/paste and the HTTP API --------------------

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stage_blocks"] = list(self.stage_blocks)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ResNeXtConfig":
        """Build from a mapping (e.g. parsed JSON); unknown keys are an error, not ignored."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        values = dict(data)
        if "stage_blocks" in values and isinstance(values["stage_blocks"], list):
            values["stage_blocks"] = tuple(values["stage_blocks"])
        return cls(**values)

    def replace(self, **changes: Any) -> "ResNeXtConfig":
        return dataclasses.replace(self, **changes)


__all__ = [
    "ResNeXtConfig",
    "IMAGENET_DEPTHS",
    "CIFAR_DEPTHS",
    "DEPTHS",
    "blocks_for_depth",
    "depth_of",
]
