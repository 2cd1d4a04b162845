"""ResNeXt (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017) in pure PyTorch: one config, any variant, exact complexity.

    import resnext
    cfg = resnext.PRESETS["resnext50_32x4d"]
    model = resnext.build_model(cfg)
    report = resnext.complexity(cfg, image_size=224)   # report.params, report.macs

The config, presets, complexity arithmetic and weights table need no torch; the parts that
do (building, converting, loading) are imported on first use, so `import resnext` is quick
and the app starts without paying for torch.
"""

from __future__ import annotations

from ._lazy import lazy_attributes
from .complexity import (
    ROLE_LABELS,
    ROLES,
    ComplexityReport,
    LayerCost,
    SegmentCost,
    complexity,
    preserving_width,
)
from .config import CIFAR_DEPTHS, DEPTHS, IMAGENET_DEPTHS, ResNeXtConfig, blocks_for_depth, depth_of
from .plan import module_count
from .presets import NATIVE_IMAGE_SIZE, PRESETS, SEED_152_BLOCKS, preset_name
from .published import (
    PUBLISHED_WEIGHTS,
    CheckpointFileError,
    PublishedWeights,
    WeightsError,
    WeightsMismatchError,
    WeightsUnavailableError,
)

_LAZY = {
    "ResNeXt": ".model",
    "build_model": ".model",
    "convert_form": ".forms",
    "convert_state_dict": ".forms",
    "load_weights": ".weights",
    "read_checkpoint": ".weights",
    "fetch_published": ".weights",
    # A module named like the function would shadow it once imported: hence "imaging".
    "preprocess": ".imaging",
    "load_image": ".imaging",
    # Training (resnext.data, resnext.train import torch): modules, reached as resnext.data.
    "data": None,
    "train": None,
}


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "CIFAR_DEPTHS", "DEPTHS", "IMAGENET_DEPTHS", "NATIVE_IMAGE_SIZE", "PRESETS",
    "PUBLISHED_WEIGHTS", "ROLES", "ROLE_LABELS", "SEED_152_BLOCKS", "CheckpointFileError",
    "ComplexityReport", "LayerCost", "PublishedWeights", "ResNeXt", "ResNeXtConfig",
    "SegmentCost", "WeightsError", "WeightsMismatchError", "WeightsUnavailableError",
    "blocks_for_depth", "build_model", "complexity", "convert_form", "convert_state_dict",
    "data", "depth_of", "fetch_published", "load_weights", "load_image", "module_count",
    "preprocess", "preserving_width", "preset_name", "read_checkpoint", "train",
]
