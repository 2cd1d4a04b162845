"""ResNeXt (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017) in pure PyTorch: one config, any variant, exact complexity.

    import resnext
    cfg = resnext.PRESETS["resnext50_32x4d"]
    model = resnext.build_model(cfg)
    report = resnext.complexity(cfg, image_size=224)   # report.params, report.macs
"""

from .complexity import ROLE_LABELS, ROLES, ComplexityReport, LayerCost, SegmentCost, complexity
from .config import CIFAR_DEPTHS, IMAGENET_DEPTHS, ResNeXtConfig, depth_of
from .forms import convert_form, convert_state_dict
from .model import ResNeXt, build_model
from .presets import NATIVE_IMAGE_SIZE, PRESETS, preset_name
from .weights import (
    PUBLISHED_WEIGHTS,
    CheckpointFileError,
    PublishedWeights,
    WeightsError,
    WeightsMismatchError,
    WeightsUnavailableError,
    load_weights,
    read_checkpoint,
)
from .width import preserving_width

__all__ = [
    "CIFAR_DEPTHS", "IMAGENET_DEPTHS", "NATIVE_IMAGE_SIZE", "PRESETS", "PUBLISHED_WEIGHTS",
    "ROLES", "ROLE_LABELS", "CheckpointFileError", "ComplexityReport", "LayerCost",
    "PublishedWeights", "ResNeXt", "ResNeXtConfig", "SegmentCost", "WeightsError",
    "WeightsMismatchError", "WeightsUnavailableError", "build_model", "complexity",
    "convert_form", "convert_state_dict", "depth_of", "load_weights", "preserving_width",
    "preset_name", "read_checkpoint",
]
