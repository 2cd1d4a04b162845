"""`build_model(cfg)`: a ResNeXt network as an `nn.Module`.

With the ImageNet stem, four stages and form (c), the state_dict is key-for-key and
shape-for-shape torchvision's `resnet50` / `resnext*` layout.
"""

from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
from torch import nn

from .blocks import make_block
from .config import ResNeXtConfig
from .plan import network_plan


@dataclass(frozen=True)
class FeatureInfo:
    """Where a stage's output can be read (timm's `feature_info`)."""

    module: str  # attribute name, e.g. "layer3"
    channels: int
    reduction: int  # input side / this stage's output side (for sides divisible by it)


# How the weights start: "kaiming" (the library's default) or "pytorch" (every module's own
# reset_parameters, as the seed's code and pytorch-cifar100 leave them).
INITS = ("kaiming", "pytorch")


class ResNeXt(nn.Module):
    def __init__(self, cfg: ResNeXtConfig, generator: torch.Generator | None = None,
                 init: str = "kaiming") -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.config = cfg
        stem_width = cfg.stem_width  # 64 in the paper (base_planes)
        if cfg.stem == "imagenet":
            # Paper Table 1, conv1: 7x7, 64, stride 2; then 3x3 max pool, stride 2.
            self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            # Paper Sec. 5.2 (CIFAR): a single 3x3 conv of 64 filters, no pooling.
            self.conv1 = nn.Conv2d(3, stem_width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = (nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
                        if cfg.stem == "imagenet" else nn.Identity())

        reduction = 4 if cfg.stem == "imagenet" else 1
        self.feature_info: list[FeatureInfo] = []
        for stage in network_plan(cfg):
            blocks = nn.Sequential(*(make_block(plan, cfg.block_form) for plan in stage.blocks))
            self.add_module(stage.name, blocks)
            reduction *= stage.stride
            self.feature_info.append(FeatureInfo(stage.name, stage.out_channels, reduction))

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.feature_info[-1].channels, cfg.num_classes)
        self._init_weights(cfg.zero_init_residual, generator, init)

    def _init_weights(self, zero_init_residual: bool, generator: torch.Generator | None,
                      init: str) -> None:
        # "kaiming": He et al. 2015 init for convs (fan_out, as torchvision). "pytorch":
        # nn.Conv2d's own reset_parameters, kaiming_uniform_(a=sqrt(5)) (no conv has a bias).
        # BN starts as identity either way (its own reset). With a generator, every random
        # value that ends up in the weights is drawn from it (module constructors still draw
        # from the global RNG, but all of that is overwritten here), so a seeded build is the
        # same whatever other threads draw.
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and init == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                        generator=generator)
            elif isinstance(module, nn.Conv2d) and generator is not None:
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if generator is not None:
            # nn.Linear's own reset_parameters, drawn from the generator.
            bound = 1 / math.sqrt(self.fc.in_features)
            nn.init.kaiming_uniform_(self.fc.weight, a=math.sqrt(5), generator=generator)
            nn.init.uniform_(self.fc.bias, -bound, bound, generator=generator)
        if zero_init_residual:
            for block in self.blocks():
                nn.init.zeros_(block.last_bn.weight)

    @property
    def stage_names(self) -> list[str]:
        return [info.module for info in self.feature_info]

    @property
    def stages(self) -> list[nn.Sequential]:
        """The stage modules in order (each an nn.Sequential of blocks)."""
        return [getattr(self, name) for name in self.stage_names]

    def blocks(self) -> list[nn.Module]:
        return [block for stage in self.stages for block in stage]

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """('layer3.5', block) for every block: layer choices for Grad-CAM and feature maps."""
        return [(f"{name}.{i}", block)
                for name, stage in zip(self.stage_names, self.stages)
                for i, block in enumerate(stage)]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stage's output, for feature-map views."""
        features = []
        x = self.forward_stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)  # (N, base_planes, H/4, W/4) ImageNet stem; (.., H, W) CIFAR
        for stage in self.stages:
            x = stage(x)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 4 * planes_last)
        return self.fc(x)  # (N, num_classes)


def build_model(cfg: ResNeXtConfig, device: torch.device | str | None = None,
                generator: torch.Generator | None = None, init: str = "kaiming") -> ResNeXt:
    """Build the network for `cfg`; `device="meta"` builds it without allocating weights.

    `generator` (on the CPU) makes the random init depend on it alone, not on the global
    RNG's state: `build_model(cfg, generator=torch.Generator().manual_seed(0))`.
    `init`: "kaiming" (Kaiming normal, fan_out, for the convs) or "pytorch" (PyTorch's
    defaults: Kaiming uniform with a = sqrt(5)), what the seed's code keeps and what
    training with the "seed" recipe uses.
    """
    if not isinstance(cfg, ResNeXtConfig):
        raise TypeError(f"build_model takes a ResNeXtConfig, got {type(cfg).__name__}")
    if device is None:
        return ResNeXt(cfg, generator, init)
    with torch.device(device):
        return ResNeXt(cfg, generator, init)


# torch's global generator is one per process, shared by every thread. kornia's augmentation
# and Captum's noise (SmoothGrad, GradientShap) can only draw from it, so work that seeds it
# (a fit, the estimate's timed steps, a seeded attribution) holds this lock for its block.
_GLOBAL_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def global_rng(devices: Iterable[int] = ()) -> Iterator[None]:
    """torch's global generators (the CPU's and those of the CUDA `devices`) for this block
    alone, their states put back after (`torch.random.fork_rng`). Another thread's block
    waits: without the lock the app's Train-tab estimate, drawing in one server thread,
    moved and then restored over the generator that a fit or a seeded attribution had just
    seeded in another, and their results changed from one call to the next."""
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=list(devices)):
        yield
