import json
from pathlib import Path

import pytest
import torch
from torch import nn

import resnext
from conftest import SMALL_CONFIGS

TORCHVISION_LAYOUT = json.loads((Path(__file__).parent / "data" / "tv_state_dict_shapes.json").read_text())


@pytest.mark.parametrize("name", sorted(TORCHVISION_LAYOUT))
def test_state_dict_is_torchvisions(name):
    model = resnext.build_model(resnext.PRESETS[name], device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == TORCHVISION_LAYOUT[name]
    assert list(ours) == list(TORCHVISION_LAYOUT[name])  # same order, too


def test_torchvision_shaped_checkpoint_loads_strictly(tmp_path):
    layout = TORCHVISION_LAYOUT["resnext50_32x4d"]
    state = {k: (torch.tensor(7) if not shape else torch.randn(shape)) for k, shape in layout.items()}
    path = tmp_path / "tv.pth"
    torch.save(state, path)
    model = resnext.load_weights(resnext.build_model(resnext.PRESETS["resnext50_32x4d"]), path)
    assert torch.equal(model.layer3[4].conv2.weight,
                       state["layer3.4.conv2.weight"])


@pytest.mark.parametrize("form", ["a", "b", "c"])
@pytest.mark.parametrize("cfg", SMALL_CONFIGS[:3])
def test_every_relu_is_its_own_non_inplace_module_used_once(cfg, form):
    model = resnext.build_model(cfg.replace(block_form=form)).eval()
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(not r.inplace for r in relus)
    calls: dict[int, int] = {}
    hooks = [r.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls.get(id(m), 0) + 1))
             for r in relus]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert len(calls) == len(relus) and set(calls.values()) == {1}
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_block_rules_of_the_paper():
    model = resnext.build_model(resnext.PRESETS["resnext50_32x4d"], device="meta")
    for stage_index, stage in enumerate(model.stages):
        for index, block in enumerate(stage):
            assert block.conv1.groups == 1 and block.conv3.groups == 1  # only the 3x3 is grouped
            assert block.conv2.groups == 32
            assert block.conv2.out_channels == 32 * (64 * 2**stage_index * 4 // 64)
            assert block.conv1.stride == (1, 1)
            expected_stride = 2 if (index == 0 and stage_index > 0) else 1
            assert block.conv2.stride == (expected_stride, expected_stride)  # stride in the 3x3
            assert (block.downsample is not None) == (index == 0)  # projection only on change
    assert isinstance(model.maxpool, nn.MaxPool2d) and model.conv1.kernel_size == (7, 7)


def test_cifar_stem_and_seed_grouped_reduce():
    model = resnext.build_model(resnext.PRESETS["seed_resnext50"], device="meta")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.layer1[0].conv1.groups == 32
    assert model.fc.out_features == 100


def test_stages_and_feature_info():
    model = resnext.build_model(resnext.PRESETS["resnext101_32x8d"], device="meta")
    assert model.stage_names == ["layer1", "layer2", "layer3", "layer4"]
    assert [len(s) for s in model.stages] == [3, 4, 23, 3]
    assert [(f.channels, f.reduction) for f in model.feature_info] == [
        (256, 4), (512, 8), (1024, 16), (2048, 32)]
    names = [n for n, _ in model.named_blocks()]
    assert names[0] == "layer1.0" and names[-1] == "layer4.2" and len(names) == 33


def test_forward_features_match_forward():
    cfg = SMALL_CONFIGS[1]
    model = resnext.build_model(cfg).eval()
    x = torch.randn(2, 3, 64, 48)
    features = model.forward_features(x)
    assert [f.shape[1] for f in features] == [256, 512, 1024]
    assert torch.allclose(model.fc(torch.flatten(model.avgpool(features[-1]), 1)), model(x))


def test_init_kaiming_and_zero_init_residual():
    cfg = SMALL_CONFIGS[0]
    model = resnext.build_model(cfg)
    conv = model.layer1[0].conv2
    fan_out = conv.out_channels * 9
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.35 * (2 / fan_out) ** 0.5
    assert all(torch.equal(b.bn3.weight, torch.ones_like(b.bn3.weight)) for b in model.blocks())
    zeroed = resnext.build_model(cfg.replace(zero_init_residual=True))
    assert all(torch.count_nonzero(b.bn3.weight) == 0 for b in zeroed.blocks())
    # A block whose last BN is zero starts as identity (plus ReLU) on its shortcut.
    block = zeroed.layer2[1].eval()
    x = torch.rand(1, block.plan.in_channels, 8, 8)
    assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize("cfg", SMALL_CONFIGS)
def test_output_shape_for_odd_sizes(cfg):
    model = resnext.build_model(cfg).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 33, 17)).shape == (2, cfg.num_classes)


def test_build_model_rejects_non_config():
    with pytest.raises(TypeError, match="ResNeXtConfig"):
        resnext.build_model({"cardinality": 32})  # type: ignore[arg-type]


def test_seeded_build_depends_on_the_generator_only():
    cfg = SMALL_CONFIGS[0]
    torch.manual_seed(1)
    first = resnext.build_model(cfg, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(2)  # whatever the global RNG holds (other threads draw from it too)
    torch.rand(1000)
    second = resnext.build_model(cfg, generator=torch.Generator().manual_seed(5))
    other = resnext.build_model(cfg, generator=torch.Generator().manual_seed(6))
    for (key, a), b, c in zip(first.state_dict().items(), second.state_dict().values(),
                              other.state_dict().values()):
        assert torch.equal(a, b), key
    assert not torch.equal(first.fc.weight, other.fc.weight)
    assert not torch.equal(first.layer1[0].conv2.weight, other.layer1[0].conv2.weight)
    # fc keeps nn.Linear's default distribution: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1 / first.fc.in_features ** 0.5
    assert first.fc.weight.abs().max() <= bound and first.fc.bias.abs().max() <= bound


@pytest.mark.parametrize("form", ["a", "b", "c"])
def test_module_count_is_exact(form):
    for cfg in [*SMALL_CONFIGS, resnext.PRESETS["resnext50_32x4d"], resnext.PRESETS["seed_resnext50"]]:
        cfg = cfg.replace(block_form=form)
        model = resnext.build_model(cfg, device="meta")
        assert resnext.module_count(cfg) == len(list(model.modules())), cfg
