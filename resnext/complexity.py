"""Parameters, multiply-adds and activation sizes of a ResNeXt, by arithmetic alone.

Scope and units (the convention of the paper, of torchvision's weights metadata and of
`torch.utils.flop_counter.FlopCounterMode`):

- params: every learnable parameter (conv weights, BN gamma/beta, fc weight and bias);
- MACs: multiply-accumulates of the convolutions and the final linear layer, batch 1;
  FLOPs = 2 x MACs. BatchNorm, ReLU, pooling and the residual additions are not counted
  (fvcore/thop/ptflops count some of them and print ~1% more);
- activations: elements output by every layer (conv, BN, ReLU, pooling, fc) in one
  forward pass of one image: what a training step keeps for backward. Bytes are float32.

No tensor is allocated: `complexity(PRESETS["resnext101_64x4d"], 224)` takes well under
a millisecond. tests/test_complexity.py checks every figure against a model built on the
meta device, summed `numel()` and FlopCounterMode.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from .config import CARDINALITY_RANGE, ResNeXtConfig
from .plan import BlockPlan, network_plan
from .validation import whole_number

FLOAT32_BYTES = 4
MAX_IMAGE_SIDE = 8192

# Where a layer's cost goes, for breakdown charts (the paper's Fig. 3 names).
ROLES = ("stem", "reduce", "grouped", "expand", "shortcut", "fc")
ROLE_LABELS = {
    "stem": "stem",
    "reduce": "1×1 reduce",
    "grouped": "grouped 3×3",
    "expand": "1×1 expand",
    "shortcut": "shortcut",
    "fc": "fc",
}


# slots: a report holds hundreds of these and up to 256 reports are memoised.
@dataclass(frozen=True, slots=True)
class LayerCost:
    name: str  # module path in the built model (form c names), e.g. "layer2.0.conv2"
    kind: str  # conv | bn | relu | maxpool | avgpool | fc
    role: str  # one of ROLES
    segment: str  # "stem", "layer1", ..., "head"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    out_height: int
    out_width: int
    params: int
    macs: int
    activations: int  # elements of this layer's output at batch 1


@dataclass(frozen=True, slots=True)
class SegmentCost:
    """The stem, one stage, or the head (pooling + fc)."""

    name: str  # "stem", "layer1", ..., "head"
    kind: str  # "stem" | "stage" | "head"
    blocks: int
    out_channels: int
    out_height: int
    out_width: int
    group_width: int  # C * floor(planes * d / 64) for stages; 0 otherwise
    params: int
    macs: int
    activations: int


@dataclass(frozen=True)
class ComplexityReport:
    config: ResNeXtConfig
    image_height: int
    image_width: int
    layers: tuple[LayerCost, ...]
    segments: tuple[SegmentCost, ...]
    params: int
    macs: int
    activations: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def weight_bytes(self) -> int:
        """float32 parameters (what torchinfo calls 'Params size')."""
        return FLOAT32_BYTES * self.params

    @property
    def activation_bytes(self) -> int:
        return FLOAT32_BYTES * self.activations

    @property
    def stages(self) -> tuple[SegmentCost, ...]:
        return tuple(s for s in self.segments if s.kind == "stage")

    @property
    def depth(self) -> int:
        return self.config.depth

    def by_role(self) -> dict[str, tuple[int, int]]:
        """role -> (params, MACs), roles in ROLES order."""
        totals: dict[str, list[int]] = {role: [0, 0] for role in ROLES}
        for layer in self.layers:
            totals[layer.role][0] += layer.params
            totals[layer.role][1] += layer.macs
        return {role: (p, m) for role, (p, m) in totals.items()}

    def by_segment_and_role(self) -> dict[str, dict[str, tuple[int, int]]]:
        """segment -> role -> (params, MACs); roles absent from a segment are omitted."""
        table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for layer in self.layers:
            cell = table[layer.segment][layer.role]
            cell[0] += layer.params
            cell[1] += layer.macs
        return {seg: {role: (p, m) for role, (p, m) in roles.items()} for seg, roles in table.items()}


def conv_output_side(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


class _Tally:
    """Collects layer rows while walking the network plan."""

    def __init__(self) -> None:
        self.layers: list[LayerCost] = []

    def conv(self, name: str, role: str, segment: str, in_ch: int, out_ch: int, kernel: int,
             stride: int, groups: int, height: int, width: int, outputs_per_layer: int = 1,
             ) -> tuple[int, int]:
        padding = kernel // 2
        out_h = conv_output_side(height, kernel, stride, padding)
        out_w = conv_output_side(width, kernel, stride, padding)
        weights = out_ch * (in_ch // groups) * kernel * kernel
        self.layers.append(LayerCost(
            name, "conv", role, segment, in_ch, out_ch, kernel, stride, groups, out_h, out_w,
            params=weights, macs=weights * out_h * out_w,
            activations=outputs_per_layer * out_ch * out_h * out_w))
        return out_h, out_w

    def elementwise(self, name: str, kind: str, role: str, segment: str, channels: int,
                    height: int, width: int) -> None:
        params = 2 * channels if kind == "bn" else 0  # BN: gamma and beta
        self.layers.append(LayerCost(
            name, kind, role, segment, channels, channels, 1, 1, 1, height, width,
            params=params, macs=0, activations=channels * height * width))

    def conv_bn(self, prefix: str, conv: str, bn: str, role: str, segment: str, in_ch: int,
                out_ch: int, kernel: int, stride: int, groups: int, height: int, width: int,
                relu: str | None = None, outputs_per_layer: int = 1) -> tuple[int, int]:
        out_h, out_w = self.conv(prefix + conv, role, segment, in_ch, out_ch, kernel, stride,
                                 groups, height, width, outputs_per_layer)
        self.elementwise(prefix + bn, "bn", role, segment, out_ch, out_h, out_w)
        if relu is not None:
            self.elementwise(prefix + relu, "relu", role, segment, out_ch, out_h, out_w)
        return out_h, out_w


def _block(tally: _Tally, prefix: str, segment: str, plan: BlockPlan, form: str,
           height: int, width: int) -> tuple[int, int]:
    w = plan.group_width
    tally.conv_bn(prefix, "conv1", "bn1", "reduce", segment, plan.in_channels, w, 1, 1,
                  plan.reduce_groups, height, width, relu="relu1")
    out_h, out_w = tally.conv_bn(prefix, "conv2", "bn2", "grouped", segment, w, w, 3,
                                 plan.stride, plan.cardinality, height, width, relu="relu2")
    # Form (a) gives each of the C paths its own full-width 1x1 output before summing them;
    # weights and MACs are the same as (b)/(c), the activations C times larger.
    expand_outputs = plan.cardinality if form == "a" else 1
    tally.conv_bn(prefix, "conv3", "bn3", "expand", segment, w, plan.out_channels, 1, 1, 1,
                  out_h, out_w, outputs_per_layer=expand_outputs)
    if plan.has_projection:
        tally.conv_bn(prefix, "downsample.0", "downsample.1", "shortcut", segment,
                      plan.in_channels, plan.out_channels, 1, plan.stride, 1, height, width)
    tally.elementwise(prefix + "relu3", "relu", "expand", segment, plan.out_channels, out_h, out_w)
    return out_h, out_w


def _segment(name: str, kind: str, rows: list[LayerCost], blocks: int, group_width: int
             ) -> SegmentCost:
    last = rows[-1]
    return SegmentCost(
        name=name, kind=kind, blocks=blocks, out_channels=last.out_channels,
        out_height=last.out_height, out_width=last.out_width, group_width=group_width,
        params=sum(r.params for r in rows), macs=sum(r.macs for r in rows),
        activations=sum(r.activations for r in rows))


def _image_sides(image_size: int | tuple[int, int]) -> tuple[int, int]:
    sides = (image_size, image_size) if not isinstance(image_size, (tuple, list)) else image_size
    if len(sides) != 2:
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}")
    height, width = (whole_number("image_size", side, 1, MAX_IMAGE_SIDE, integral_floats=False)
                     for side in sides)
    return height, width


def complexity(cfg: ResNeXtConfig, image_size: int | tuple[int, int] = 224) -> ComplexityReport:
    """Exact params, MACs and activations of `cfg` on a square (or (h, w)) image, batch 1."""
    if not isinstance(cfg, ResNeXtConfig):
        raise TypeError(f"complexity takes a ResNeXtConfig, got {type(cfg).__name__}")
    height, width = _image_sides(image_size)
    return _complexity(cfg, height, width)


@lru_cache(maxsize=256)
def _complexity(cfg: ResNeXtConfig, height: int, width: int) -> ComplexityReport:
    tally = _Tally()
    segments: list[SegmentCost] = []

    # Stem (Table 1 conv1 and the max pool for ImageNet; Sec. 5.2's 3x3 conv for CIFAR).
    stem_width = cfg.stem_width
    if cfg.stem == "imagenet":
        h, w = tally.conv_bn("", "conv1", "bn1", "stem", "stem", 3, stem_width, 7, 2, 1,
                             height, width, relu="relu")
        h, w = conv_output_side(h, 3, 2, 1), conv_output_side(w, 3, 2, 1)
        tally.elementwise("maxpool", "maxpool", "stem", "stem", stem_width, h, w)
    else:
        h, w = tally.conv_bn("", "conv1", "bn1", "stem", "stem", 3, stem_width, 3, 1, 1,
                             height, width, relu="relu")
    segments.append(_segment("stem", "stem", tally.layers, 0, 0))

    for stage in network_plan(cfg):
        start = len(tally.layers)
        for index, plan in enumerate(stage.blocks):
            h, w = _block(tally, f"{stage.name}.{index}.", stage.name, plan, cfg.block_form, h, w)
        segments.append(_segment(stage.name, "stage", tally.layers[start:], len(stage.blocks),
                                 stage.group_width))

    start = len(tally.layers)
    channels = stage.out_channels
    tally.elementwise("avgpool", "avgpool", "fc", "head", channels, 1, 1)
    tally.layers.append(LayerCost(
        "fc", "fc", "fc", "head", channels, cfg.num_classes, 1, 1, 1, 1, 1,
        params=channels * cfg.num_classes + cfg.num_classes, macs=channels * cfg.num_classes,
        activations=cfg.num_classes))
    segments.append(_segment("head", "head", tally.layers[start:], 0, 0))

    layers = tuple(tally.layers)
    return ComplexityReport(
        config=cfg, image_height=height, image_width=width, layers=layers,
        segments=tuple(segments),
        params=sum(s.params for s in segments), macs=sum(s.macs for s in segments),
        activations=sum(s.activations for s in segments))


# The complexity-preserving bottleneck width (paper Sec. 3.3 / Table 2) ---------------------

# The conv2-stage block of the template has 256 input and output channels (Table 1).
_TEMPLATE_CHANNELS = 256


def block_template_params(cardinality: int, width: int) -> int:
    """Weights of a conv2 block: C * (256*d + 3*3*d*d + d*256) (paper Sec. 3.3)."""
    return cardinality * (_TEMPLATE_CHANNELS * width + 9 * width * width + width * _TEMPLATE_CHANNELS)


def preserving_width(cardinality: int, reference: str | ResNeXtConfig = "resnet50") -> int:
    """Bottleneck width d that keeps a conv2 block's weights equal to `reference`'s.

    Solves 9*C*d^2 + 512*C*d = P_ref for d and rounds to the nearest integer. With ResNet-50
    (P_ref = 69,632) this gives the paper's Table 2: C = 1, 2, 4, 8, 32 -> d = 64, 40, 24,
    14, 4. For very large C the exact solution falls below 0.5; d is then 1, the narrowest
    path there is (its cost no longer matches the reference).
    """
    cardinality = whole_number("cardinality", cardinality, *CARDINALITY_RANGE,
                               integral_floats=False)
    if isinstance(reference, str):
        from .presets import PRESETS

        if reference not in PRESETS:
            raise ValueError(f"reference must be a preset name {sorted(PRESETS)} or a config, "
                             f"got {reference!r}")
        reference = PRESETS[reference]
    target = block_template_params(reference.cardinality, reference.bottleneck_width)
    a = 9 * cardinality
    b = 2 * _TEMPLATE_CHANNELS * cardinality
    exact = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
    return max(1, int(math.floor(exact + 0.5)))
