"""Checkpoints saved by the seed's code (pytorch-cifar100's models/resnext.py, which the seed
blog follows) load into the seed presets and give the logits of the code that saved them.

`SeedStyleResNeXt` below is written for these tests from the seed's description: the same
module tree, so the same state_dict keys (`conv1.0.weight`, `conv2.0.split_transforms.0.weight`,
`conv2.0.shortcut.0.weight`, ..., `fc.weight`) and the same computation."""

import pytest
import torch
from torch import nn

import resnext
from conftest import randomize_batchnorm
from resnext import weights


class SeedStyleBlock(nn.Module):
    """1x1 (C groups) -> 3x3 (C groups, the stride) -> 1x1, BN after each; ReLU of the sum
    with the shortcut (a 1x1 conv + BN where the shape changes, else the input)."""

    def __init__(self, in_channels, planes, stride, cardinality=32, width_per_group=4):
        super().__init__()
        width = cardinality * int(width_per_group * planes / 64)
        out = 4 * planes
        self.split_transforms = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, groups=cardinality, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        return torch.relu(self.split_transforms(x) + self.shortcut(x))


class SeedStyleResNeXt(nn.Module):
    """3x3 stem without pooling as `conv1`, stages `conv2`..`conv5`, average pool, `fc`."""

    def __init__(self, stage_blocks=(3, 4, 6, 3), cardinality=32, width_per_group=4,
                 classes=100):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        channels = 64
        for stage, (count, planes) in enumerate(zip(stage_blocks, (64, 128, 256, 512))):
            blocks = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(SeedStyleBlock(channels, planes, stride, cardinality,
                                             width_per_group))
                channels = 4 * planes
            setattr(self, f"conv{stage + 2}", nn.Sequential(*blocks))
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.conv1(x)
        for stage in (self.conv2, self.conv3, self.conv4, self.conv5):
            x = stage(x)
        return self.fc(self.avg(x).flatten(1))


@pytest.fixture(scope="module")
def seed_50_file(tmp_path_factory):
    """The seed's ResNeXt-50, BN statistics randomised, saved as train.py saves it."""
    torch.manual_seed(0)
    source = SeedStyleResNeXt()
    randomize_batchnorm(source, torch.Generator().manual_seed(1))
    folder = tmp_path_factory.mktemp("seed")
    torch.save(source.state_dict(), folder / "resnext50-183-best.pth")
    torch.save({"module." + k: v for k, v in source.state_dict().items()},
               folder / "dataparallel.pth")
    return source.eval(), folder


def test_the_seed_style_network_is_the_seed_resnext50():
    source = SeedStyleResNeXt()
    assert sum(p.numel() for p in source.parameters()) == 14_788_772
    keys = list(source.state_dict())
    assert keys[:2] == ["conv1.0.weight", "conv1.1.weight"]
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    assert "conv2.0.split_transforms.0.weight" in keys and "conv2.0.shortcut.0.weight" in keys
    ours = resnext.build_model(resnext.PRESETS["seed_resnext50"], device="meta").state_dict()
    renamed = weights.from_seed_names(source.state_dict())
    assert {k: v.shape for k, v in renamed.items()} == {k: v.shape for k, v in ours.items()}


@pytest.mark.parametrize("name", ["resnext50-183-best.pth", "dataparallel.pth"])
def test_seed_checkpoint_loads_and_gives_the_same_logits(seed_50_file, name):
    source, folder = seed_50_file
    model = resnext.build_model(resnext.PRESETS["seed_resnext50"])
    assert resnext.load_weights(model, folder / name) is model and not model.training
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = source(x), model(x)
    assert expected.std() > 0.1  # BN statistics randomised: logits far from constant
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert torch.equal(model.layer1[0].bn1.running_var,
                       source.conv2[0].split_transforms[1].running_var)


def test_seed_50_checkpoint_is_refused_by_seed_101_naming_seed_50(seed_50_file):
    _, folder = seed_50_file
    model = resnext.build_model(resnext.PRESETS["seed_resnext101"], device="meta")
    with pytest.raises(resnext.WeightsMismatchError) as info:
        resnext.load_weights(model, folder / "resnext50-183-best.pth")
    message = str(info.value)
    assert message.startswith("the checkpoint does not fit this model; it is a checkpoint of "
                              "the preset seed_resnext50")
    assert "missing key(s): layer3." in message  # in our names, as the model's
    assert "layer3.6.conv1.weight" in info.value.missing and not info.value.unexpected


@pytest.mark.parametrize("form", ["a", "b"])
def test_small_seed_style_checkpoint_loads_into_every_form(tmp_path, form):
    source = SeedStyleResNeXt(stage_blocks=(1, 2, 1, 1), cardinality=4, classes=7)
    randomize_batchnorm(source, torch.Generator().manual_seed(3))
    torch.save(source.state_dict(), tmp_path / "small.pth")
    cfg = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=4, stage_blocks=(1, 2, 1, 1),
                                stem="cifar", grouped_reduce=True, num_classes=7, block_form=form)
    model = resnext.load_weights(resnext.build_model(cfg), tmp_path / "small.pth")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), source.eval()(x), rtol=1e-4, atol=1e-4)


def meta_state(name, **changes):
    cfg = resnext.PRESETS[name].replace(**changes)
    return resnext.build_model(cfg, device="meta").state_dict()


def test_a_mismatch_names_the_preset_the_checkpoint_fits():
    assert weights.checkpoint_fit(meta_state("resnext50_32x4d")).startswith(
        "it is a checkpoint of the preset resnext50_32x4d: ")
    assert "seed_resnext152 (the seed's code" in weights.checkpoint_fit(meta_state(
        "seed_resnext152"))
    assert weights.checkpoint_fit(meta_state("resnext29_8x64d", num_classes=100)).startswith(
        "it fits the preset resnext29_8x64d with num_classes=100")
    assert weights.checkpoint_fit(meta_state("resnet50", stage_blocks=(2, 2, 2, 2))) == (
        "it fits none of the presets")


def test_a_checkpoint_of_no_preset_says_so(tmp_path):
    cfg = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=8, stage_blocks=(1,),
                                stem="cifar", num_classes=3)
    torch.save(resnext.build_model(cfg).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(resnext.WeightsMismatchError, match="; it fits none of the presets; "):
        resnext.load_weights(resnext.build_model(cfg.replace(num_classes=4)), tmp_path / "tiny.pth")


def test_seed_key_names():
    rename = weights.seed_key
    assert rename("conv1.0.weight") == "conv1.weight"
    assert rename("conv1.1.running_mean") == "bn1.running_mean"
    assert rename("conv2.0.split_transforms.0.weight") == "layer1.0.conv1.weight"
    assert rename("conv3.1.split_transforms.4.num_batches_tracked") == (
        "layer2.1.bn2.num_batches_tracked")
    assert rename("conv5.2.split_transforms.7.bias") == "layer4.2.bn3.bias"
    assert rename("conv4.0.shortcut.1.running_var") == "layer3.0.downsample.1.running_var"
    for kept in ("fc.weight", "conv2.0.split_transforms.2.weight", "conv2.0.shortcut.5.weight",
                 "layer1.0.conv1.weight", "conv1.weight"):
        assert rename(kept) == kept
    assert not weights.is_seed_checkpoint({"conv1.weight": 0, "fc.weight": 0})


def test_app_upload_of_a_seed_checkpoint(seed_50_file):
    """The Run and Attributions tabs' upload: a seed preset just works; another is refused
    with the library's message."""
    from explorer.selection import Selection
    from explorer.shared.weights_choice import choose_weights

    _, folder = seed_50_file
    path = str(folder / "resnext50-183-best.pth")
    choice = choose_weights("upload", 0, None, path,
                            Selection(resnext.PRESETS["seed_resnext50"], 32))
    assert choice.kind == "upload" and choice.path == path
    with pytest.raises(resnext.WeightsMismatchError, match="preset seed_resnext50"):
        choose_weights("upload", 0, None, path, Selection(resnext.PRESETS["seed_resnext101"], 32))
