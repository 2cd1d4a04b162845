"""Every preset's exact parameter and MAC counts (reference: ../shared facts, which come from
torchvision's published weights metadata, the paper's Tables 1 and 7, and the seed blog)."""

import pytest
import torch

import resnext

# name: (params, MACs at its native input side, input side)
PUBLISHED = {
    "resnet50": (25_557_032, 4_089_184_256, 224),
    "resnext50_32x4d": (25_028_904, 4_230_479_872, 224),
    "resnext101_32x4d": (44_177_704, 7_969_996_800, 224),
    "resnext101_32x8d": (88_791_336, 16_414_015_488, 224),
    "resnext101_64x4d": (83_455_272, 15_460_270_080, 224),
    "resnext152_32x4d": (59_951_400, 11_709_513_728, 224),
    "resnext29_8x64d": (34_426_698, 5_387_266_048, 32),
    "resnext29_16x64d": (68_155_210, 10_688_866_304, 32),
}
# The seed blog's models exactly as written (CIFAR-100 head); the source gives params only.
SEED_PARAMS = {"seed_resnext50": 14_788_772, "seed_resnext101": 25_303_204,
               "seed_resnext152": 33_343_652}


def test_preset_names():
    assert set(resnext.PRESETS) == set(PUBLISHED) | set(SEED_PARAMS)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts_exact(name):
    params, macs, side = PUBLISHED[name]
    assert resnext.NATIVE_IMAGE_SIZE[name] == side
    report = resnext.complexity(resnext.PRESETS[name], side)
    assert report.params == params
    assert report.macs == macs
    assert report.flops == 2 * macs
    model = resnext.build_model(resnext.PRESETS[name], device="meta")
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_seed_params_exact(name):
    cfg = resnext.PRESETS[name]
    assert resnext.complexity(cfg, 224).params == SEED_PARAMS[name]
    model = resnext.build_model(cfg, device="meta")
    assert sum(p.numel() for p in model.parameters()) == SEED_PARAMS[name]
    assert cfg.grouped_reduce and cfg.stem == "cifar" and cfg.num_classes == 100


def test_paper_table_1_rounded():
    # Table 1: ResNet-50 25.5 M params / 4.1 G FLOPs(=MACs); ResNeXt-50 25.0 M / 4.2 G.
    r50 = resnext.complexity(resnext.PRESETS["resnet50"], 224)
    x50 = resnext.complexity(resnext.PRESETS["resnext50_32x4d"], 224)
    assert round(r50.params / 1e6, 1) == 25.6 and int(r50.params / 1e5) == 255  # 25.5x M
    assert round(r50.macs / 1e9, 1) == 4.1
    assert round(x50.params / 1e6, 1) == 25.0
    assert round(x50.macs / 1e9, 1) == 4.2


def test_paper_table_7_rounded():
    assert round(resnext.complexity(resnext.PRESETS["resnext29_8x64d"], 32).params / 1e6, 1) == 34.4
    assert round(resnext.complexity(resnext.PRESETS["resnext29_16x64d"], 32).params / 1e6, 1) == 68.2


def test_seed_152_layout_differs_from_paper():
    assert resnext.PRESETS["seed_resnext152"].stage_blocks == (3, 4, 36, 3)
    assert resnext.PRESETS["resnext152_32x4d"].stage_blocks == (3, 8, 36, 3)


def test_seed_resnext50_forward_shape_as_in_blog():
    model = resnext.build_model(resnext.PRESETS["seed_resnext50"]).eval()
    with torch.inference_mode():
        out = model(torch.randn(3, 3, 224, 224))
    assert out.shape == (3, 100)


def test_preset_name_lookup():
    for name, cfg in resnext.PRESETS.items():
        assert resnext.preset_name(cfg) == name
    assert resnext.preset_name(resnext.ResNeXtConfig(cardinality=5)) is None
