import json

import pytest

import resnext
from resnext import ResNeXtConfig


def test_defaults_are_resnext50_32x4d():
    assert ResNeXtConfig() == resnext.PRESETS["resnext50_32x4d"]


def test_frozen_and_hashable():
    cfg = ResNeXtConfig()
    with pytest.raises(AttributeError):
        cfg.cardinality = 8  # type: ignore[misc]
    assert hash(cfg) == hash(ResNeXtConfig())


@pytest.mark.parametrize("field,value,fragment", [
    ("cardinality", 0, "cardinality must be an integer in [1, 1024], got 0"),
    ("cardinality", -3, "cardinality must be an integer in [1, 1024], got -3"),
    ("cardinality", 2.5, "cardinality must be an integer in [1, 1024], got 2.5"),
    ("cardinality", 4.0, "got the float 4.0; pass 4"),
    ("cardinality", True, "cardinality must be an integer"),
    ("cardinality", 10**9, "cardinality must be an integer in [1, 1024], got 1000000000"),
    ("cardinality", float("nan"), "cardinality must be an integer in [1, 1024], got nan"),
    ("cardinality", "32", "cardinality must be an integer in [1, 1024], got '32'"),
    ("bottleneck_width", 0, "bottleneck_width must be an integer in [1, 1024], got 0"),
    ("bottleneck_width", 1025, "bottleneck_width must be an integer in [1, 1024], got 1025"),
    ("num_classes", 0, "num_classes must be an integer in [1, 100000], got 0"),
    ("num_classes", 10**6, "num_classes must be an integer in [1, 100000], got 1000000"),
    ("stage_blocks", (), "stage_blocks must have 1 to 6 stages, got 0"),
    ("stage_blocks", (1,) * 7, "stage_blocks must have 1 to 6 stages, got 7"),
    ("stage_blocks", (3, 0, 6, 3), "stage_blocks[1] must be an integer in [1, 64], got 0"),
    ("stage_blocks", (3, 65), "stage_blocks[1] must be an integer in [1, 64], got 65"),
    ("stage_blocks", (3, 2.5), "stage_blocks[1] must be an integer in [1, 64], got 2.5"),
    ("stage_blocks", "3463", "stage_blocks must be a tuple"),
    ("stem", "resnet", "stem must be one of ('imagenet', 'cifar'), got 'resnet'"),
    ("block_form", "d", "block_form must be one of ('a', 'b', 'c'), got 'd'"),
    ("grouped_reduce", 1, "grouped_reduce must be True or False, got 1"),
    ("base_planes", 0, "base_planes must be an integer in [1, 1024], got 0"),
    ("base_planes", 1025, "base_planes must be an integer in [1, 1024], got 1025"),
    ("base_planes", 16.0, "got the float 16.0; pass 16"),
])
def test_bad_values_name_field_value_and_range(field, value, fragment):
    with pytest.raises(ValueError) as info:
        ResNeXtConfig(**{field: value})
    assert fragment in str(info.value)


def test_group_width_bound():
    with pytest.raises(ValueError, match=r"cardinality x bottleneck_width must be at most 16384, "
                                         r"got 1024 x 17 = 17408"):
        ResNeXtConfig(cardinality=1024, bottleneck_width=17)
    ResNeXtConfig(cardinality=1024, bottleneck_width=16)


def test_grouped_reduce_needs_cardinality_dividing_stem():
    with pytest.raises(ValueError, match="grouped_reduce needs a cardinality that divides 64"):
        ResNeXtConfig(cardinality=3, grouped_reduce=True)
    ResNeXtConfig(cardinality=64, grouped_reduce=True)


def test_list_stage_blocks_become_tuple():
    cfg = ResNeXtConfig(stage_blocks=[3, 4, 6, 3])  # type: ignore[arg-type]
    assert cfg.stage_blocks == (3, 4, 6, 3)
    assert cfg == ResNeXtConfig()


def test_json_round_trip():
    for cfg in resnext.PRESETS.values():
        text = json.dumps(cfg.to_dict())
        assert ResNeXtConfig.from_dict(json.loads(text)) == cfg


def test_from_dict_rejects_unknown_and_non_objects():
    with pytest.raises(ValueError, match=r"unknown config field\(s\) \['groups'\]"):
        ResNeXtConfig.from_dict({"groups": 3})
    with pytest.raises(ValueError, match="must be a JSON object"):
        ResNeXtConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_derived_values():
    cfg = resnext.PRESETS["resnext101_32x8d"]
    assert cfg.depth == 101
    assert [cfg.group_width(i) for i in range(4)] == [256, 512, 1024, 2048]
    assert cfg.name == "ResNeXt-101 (32x8d)"
    assert resnext.PRESETS["resnet50"].name == "ResNet-50 (1x64d)"
    assert resnext.PRESETS["resnext29_8x64d"].depth == 29
    for depth, blocks in {**resnext.IMAGENET_DEPTHS, **resnext.CIFAR_DEPTHS}.items():
        assert resnext.depth_of(blocks) == depth


def test_base_planes_default_is_the_paper_and_scales_every_stage():
    assert ResNeXtConfig().base_planes == 64
    assert "base_planes" in ResNeXtConfig().to_dict()
    small = ResNeXtConfig(cardinality=4, bottleneck_width=16, stage_blocks=(1, 1, 1),
                          stem="cifar", base_planes=16)
    assert small.stem_width == 16
    assert [small.planes(i) for i in range(3)] == [16, 32, 64]
    # C * floor(planes * d / 64): 4 * floor(16 * 16 / 64) = 16, then 32, 64.
    assert [small.group_width(i) for i in range(3)] == [16, 32, 64]
    assert ResNeXtConfig.from_dict(json.loads(json.dumps(small.to_dict()))) == small
    assert small.name == "ResNeXt-11 (4x16d, 16 base planes)"
    assert ResNeXtConfig().name == "ResNeXt-50 (32x4d)"


def test_zero_group_width_is_refused_with_a_fix():
    # The example: 2 * floor(8 * 4 / 64) = 0.
    with pytest.raises(ValueError) as info:
        ResNeXtConfig(cardinality=2, bottleneck_width=4, base_planes=8)
    message = str(info.value)
    assert "group width would be 0" in message
    assert "bottleneck_width >= 8" in message and "base_planes >= 16" in message
    # Both suggested fixes are accepted.
    ResNeXtConfig(cardinality=2, bottleneck_width=8, base_planes=8)
    ResNeXtConfig(cardinality=2, bottleneck_width=4, base_planes=16)


def test_grouped_reduce_uses_base_planes():
    ResNeXtConfig(cardinality=16, bottleneck_width=4, base_planes=16, grouped_reduce=True)
    with pytest.raises(ValueError, match="divides 16"):
        ResNeXtConfig(cardinality=32, bottleneck_width=4, base_planes=16, grouped_reduce=True)


def test_depth_tables_are_read_only_and_merged_once():
    assert dict(resnext.DEPTHS) == {**resnext.IMAGENET_DEPTHS, **resnext.CIFAR_DEPTHS}
    assert list(resnext.DEPTHS) == sorted(resnext.DEPTHS)
    assert resnext.blocks_for_depth(101) == (3, 4, 23, 3)
    assert resnext.blocks_for_depth(29) == (3, 3, 3)
    assert resnext.blocks_for_depth(77) is None
    with pytest.raises(TypeError):
        resnext.IMAGENET_DEPTHS[18] = (2, 2, 2, 2)  # type: ignore[index]
    assert not hasattr(ResNeXtConfig(), "num_stages")
    assert resnext.depth_of(resnext.SEED_152_BLOCKS) == 140


def test_import_stays_torch_free_and_training_loads_on_use():
    import subprocess
    import sys

    code = ("import sys, resnext; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert {'data', 'train', 'DEPTHS', 'blocks_for_depth'} <= set(dir(resnext)); "
            "resnext.train.fit; assert 'torch' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
