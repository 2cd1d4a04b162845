"""The ResNeXt bottleneck block in the three equivalent forms of the paper's Fig. 3.

Every activation is its own non-in-place `nn.ReLU` used once per forward: Captum's
hook-based methods (DeepLift, GuidedBackprop, GuidedGradCam) hook modules and go wrong
when one ReLU module is called several times or modifies its input in place.

Parameter names of form (c) are torchvision's (`conv1`, `bn1`, ..., `downsample.0/1`) so
its ImageNet checkpoints load with strict=True.
"""

from __future__ import annotations

import torch
from torch import nn

from .plan import BlockPlan


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, groups=groups,
                     bias=False)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1,
                     groups=groups, bias=False)


def projection(plan: BlockPlan) -> nn.Module | None:
    """1x1 conv + BN shortcut where the block changes shape (paper Sec. 4, option B)."""
    if not plan.has_projection:
        return None
    return nn.Sequential(
        conv1x1(plan.in_channels, plan.out_channels, stride=plan.stride),
        nn.BatchNorm2d(plan.out_channels),
    )


class _Bottleneck(nn.Module):
    """Shared tail of every form: the aggregated transform T(x) plus shortcut, then ReLU."""

    form: str

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        self.plan = plan

    def _add_shortcut(self) -> None:
        # Registered after the transform's layers so state_dict order is torchvision's.
        self.downsample = projection(self.plan)
        self.relu3 = nn.ReLU(inplace=False)

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.transform(x)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


class BottleneckC(_Bottleneck):
    """Fig. 3(c): dense 1x1 -> grouped 3x3 (C groups) -> dense 1x1. The paper's implementation."""

    form = "c"

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__(plan)
        width = plan.group_width
        self.conv1 = conv1x1(plan.in_channels, width, groups=plan.reduce_groups)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(width, width, stride=plan.stride, groups=plan.cardinality)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = conv1x1(width, plan.out_channels)
        self.bn3 = nn.BatchNorm2d(plan.out_channels)
        self._add_shortcut()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # (N, C*w, H, W)
        out = self.relu2(self.bn2(self.conv2(out)))  # (N, C*w, H/s, W/s)
        return self.bn3(self.conv3(out))  # (N, 4*planes, H/s, W/s)


class Path(nn.Module):
    """One of the C low-dimensional paths of Fig. 3(a)/(b): 1x1 reduce -> 3x3 (-> 1x1 expand)."""

    def __init__(self, in_channels: int, width: int, stride: int, out_channels: int | None) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(width, width, stride=stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=False)
        # Form (a) ends each path in its own 1x1 expand; form (b) leaves that to the block.
        self.conv3 = None if out_channels is None else conv1x1(width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu2(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
        return out if self.conv3 is None else self.conv3(out)


class _PathBlock(_Bottleneck):
    """Fig. 3(a)/(b): C explicit paths. With `grouped_reduce` (the seed's variant) each path
    reads only its own 1/C slice of the input channels, which is what groups=C means."""

    def __init__(self, plan: BlockPlan, expand_in_path: bool) -> None:
        super().__init__(plan)
        width = plan.group_width // plan.cardinality
        path_in = plan.in_channels // plan.reduce_groups
        out = plan.out_channels if expand_in_path else None
        self.paths = nn.ModuleList(
            Path(path_in, width, plan.stride, out) for _ in range(plan.cardinality)
        )

    def _path_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.plan.grouped_reduce:
            return list(x.chunk(self.plan.cardinality, dim=1))
        return [x] * self.plan.cardinality


class BottleneckA(_PathBlock):
    """Fig. 3(a): C paths of 1x1 -> 3x3 -> 1x1, summed; BN of the sum (BN is per channel and
    affine in eval, so BN(sum) equals form (c)'s BN after its dense 1x1)."""

    form = "a"

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__(plan, expand_in_path=True)
        self.bn3 = nn.BatchNorm2d(plan.out_channels)
        self._add_shortcut()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        # A running sum keeps one output-sized tensor alive, not C of them.
        total = sum(path(part) for path, part in zip(self.paths, self._path_inputs(x)))
        return self.bn3(total)


class BottleneckB(_PathBlock):
    """Fig. 3(b): C paths of 1x1 -> 3x3, concatenated, then one dense 1x1."""

    form = "b"

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__(plan, expand_in_path=False)
        self.conv3 = conv1x1(plan.group_width, plan.out_channels)
        self.bn3 = nn.BatchNorm2d(plan.out_channels)
        self._add_shortcut()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        paths = [path(part) for path, part in zip(self.paths, self._path_inputs(x))]
        return self.bn3(self.conv3(torch.cat(paths, dim=1)))


BLOCKS: dict[str, type[_Bottleneck]] = {"a": BottleneckA, "b": BottleneckB, "c": BottleneckC}


def make_block(plan: BlockPlan, form: str) -> _Bottleneck:
    return BLOCKS[form](plan)
