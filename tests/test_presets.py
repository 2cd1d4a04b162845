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


def paper_millions(params: int) -> float:
    """Parameters in millions as the paper prints them: TRUNCATED to one decimal.

    Every parameter count the paper prints follows truncation, and two contradict rounding:
    ResNet-50 25,557,032 is printed 25.5 M (Table 1; rounding gives 25.6) and ResNeXt-29
    16x64d 68,155,210 is printed 68.1 M (Table 7; rounding gives 68.2).
    """
    return (params // 100_000) / 10


def paper_billions(macs: int) -> float:
    """Multiply-adds in billions as the paper prints them: ROUNDED to one decimal.

    Truncation cannot be the convention here: ResNet-50's 4,089,184,256 MACs are printed
    4.1 G in Table 1 (truncation gives 4.0).
    """
    return round(macs / 1e9, 1)


# (preset, input side, params in M, MACs in G or None): the paper's Table 1 and Table 7.
PAPER_PRINTS = [
    ("resnet50", 224, 25.5, 4.1),
    ("resnext50_32x4d", 224, 25.0, 4.2),
    ("resnext29_8x64d", 32, 34.4, None),
    ("resnext29_16x64d", 32, 68.1, None),
]


@pytest.mark.parametrize("name, side, params_m, macs_g", PAPER_PRINTS)
def test_counts_read_as_the_paper_prints_them(name, side, params_m, macs_g):
    report = resnext.complexity(resnext.PRESETS[name], side)
    assert paper_millions(report.params) == params_m
    if macs_g is not None:
        assert paper_billions(report.macs) == macs_g


def test_the_conventions_are_the_only_ones_that_fit():
    # Rounding the parameters would contradict the paper twice; truncating MACs once.
    assert round(25_557_032 / 1e6, 1) == 25.6 != paper_millions(25_557_032)
    assert round(68_155_210 / 1e6, 1) == 68.2 != paper_millions(68_155_210)
    assert 4_089_184_256 // 100_000_000 / 10 == 4.0 != paper_billions(4_089_184_256)


def test_seed_152_layout_differs_from_paper():
    assert resnext.PRESETS["seed_resnext152"].stage_blocks == (3, 4, 36, 3)
    assert resnext.PRESETS["resnext152_32x4d"].stage_blocks == (3, 8, 36, 3)


def test_seed_resnext50_forward_shape_as_in_blog():
    # The blog's check: a (3, 3, 224, 224) batch gives torch.Size([3, 100]). On the meta
    # device the forward pass computes every shape and no values: the CIFAR stem keeps
    # 224x224 maps through layer1, ~25 s of CPU for the same answer.
    model = resnext.build_model(resnext.PRESETS["seed_resnext50"], device="meta").eval()
    out = model(torch.empty(3, 3, 224, 224, device="meta"))
    assert out.shape == (3, 100)


def test_preset_name_lookup():
    for name, cfg in resnext.PRESETS.items():
        assert resnext.preset_name(cfg) == name
    assert resnext.preset_name(resnext.ResNeXtConfig(cardinality=5)) is None
