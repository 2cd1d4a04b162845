"""The shape of a network, worked out once from its config.

Both the builder (`model.py`) and the arithmetic (`complexity.py`) read this plan, so the
two can't disagree on which block has a projection or where the stride sits.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ResNeXtConfig


@dataclass(frozen=True)
class BlockPlan:
    in_channels: int
    group_width: int  # C * floor(planes * d / 64): channels of the grouped 3x3
    out_channels: int  # 4 * planes
    stride: int  # in the 3x3 conv of a stage's first block ("ResNet v1.5", as torchvision)
    cardinality: int
    grouped_reduce: bool

    @property
    def has_projection(self) -> bool:
        # Paper Sec. 4: projection shortcut (1x1 conv + BN) only where the shape changes.
        return self.stride != 1 or self.in_channels != self.out_channels

    @property
    def reduce_groups(self) -> int:
        return self.cardinality if self.grouped_reduce else 1


@dataclass(frozen=True)
class StagePlan:
    index: int  # 0-based; torchvision calls stage i "layer{i+1}", the paper "conv{i+2}"
    blocks: tuple[BlockPlan, ...]

    @property
    def name(self) -> str:
        return f"layer{self.index + 1}"

    @property
    def stride(self) -> int:
        return self.blocks[0].stride

    @property
    def out_channels(self) -> int:
        return self.blocks[-1].out_channels

    @property
    def group_width(self) -> int:
        return self.blocks[0].group_width


def network_plan(cfg: ResNeXtConfig) -> tuple[StagePlan, ...]:
    stages = []
    in_channels = cfg.stem_width
    for index, count in enumerate(cfg.stage_blocks):
        blocks = []
        for position in range(count):
            # The first stage keeps the stem's resolution (the ImageNet stem already pooled).
            stride = 2 if (position == 0 and index > 0) else 1
            block = BlockPlan(
                in_channels=in_channels,
                group_width=cfg.group_width(index),
                out_channels=cfg.out_channels(index),
                stride=stride,
                cardinality=cfg.cardinality,
                grouped_reduce=cfg.grouped_reduce,
            )
            blocks.append(block)
            in_channels = block.out_channels
        stages.append(StagePlan(index=index, blocks=tuple(blocks)))
    return tuple(stages)


def module_count(cfg: ResNeXtConfig) -> int:
    """How many nn.Modules `build_model(cfg)` creates (len(list(model.modules()))), by arithmetic.

    Forms (a) and (b) build C explicit paths per block, so their module count grows with C;
    callers use this to refuse networks too large to build or summarise in reasonable time.
    """
    # ResNeXt itself, conv1, bn1, relu, maxpool (Identity for CIFAR), avgpool, fc.
    count = 7
    for stage in network_plan(cfg):
        count += 1  # the stage's nn.Sequential
        for block in stage.blocks:
            if cfg.block_form == "c":
                count += 1 + 9  # block; conv1, bn1, relu1, conv2, bn2, relu2, conv3, bn3, relu3
            elif cfg.block_form == "a":
                # block, ModuleList, bn3, relu3; per path: Path + conv1, bn1, relu1, conv2, bn2, relu2, conv3
                count += 4 + 8 * cfg.cardinality
            else:
                # block, ModuleList, conv3, bn3, relu3; per path: Path + 6 (no conv3)
                count += 5 + 7 * cfg.cardinality
            if block.has_projection:
                count += 3  # downsample Sequential, its conv and BN
    return count
