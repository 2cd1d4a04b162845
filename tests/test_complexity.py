"""`complexity` against independent references: summed numel() and FlopCounterMode on a
model built on the meta device, and forward hooks for activation sizes."""

import random
import time

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import resnext
from resnext import ResNeXtConfig


def random_configs(count: int, seed: int) -> list[tuple[ResNeXtConfig, int | tuple[int, int]]]:
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        cardinality = rng.choice([1, 2, 3, 4, 5, 8, 16, 32, 64])
        # base_planes: the paper's 64 half the time, else a narrower or wider stem/stage 1.
        base_planes = 64 if rng.random() < 0.5 else rng.choice([1, 3, 8, 16, 24, 40, 96, 128])
        width = rng.choice([1, 2, 3, 4, 7, 8, 14, 24, 40, 64])
        if base_planes * width < 64:
            continue  # group width 0: refused by the config (tested in test_config.py)
        grouped = rng.random() < 0.25 and base_planes % cardinality == 0
        cfg = ResNeXtConfig(
            cardinality=cardinality,
            bottleneck_width=width,
            base_planes=base_planes,
            stage_blocks=tuple(rng.randint(1, 3) for _ in range(rng.randint(1, 6))),
            num_classes=rng.choice([1, 10, 100, 1000, 21843]),
            stem=rng.choice(["imagenet", "cifar"]),
            block_form=rng.choice(["a", "b", "c"]),
            grouped_reduce=grouped,
        )
        side = rng.choice([1, 7, 32, 64, 97, 112, 129, 224, 225, 299])
        size = side if rng.random() < 0.8 else (side, rng.choice([17, 97, 224]))
        out.append((cfg, size))
    return out


PRESET_CASES = [(cfg, resnext.NATIVE_IMAGE_SIZE[name]) for name, cfg in resnext.PRESETS.items()]
RANDOM_CASES = random_configs(36, seed=1611_05431)
# Sizes the issue names explicitly.
ODD_CASES = [(resnext.PRESETS["resnext50_32x4d"], 97), (resnext.PRESETS["resnext50_32x4d"], 225),
             (resnext.PRESETS["resnet50"], 97), (resnext.PRESETS["resnext29_8x64d"], 225)]


def measure(cfg: ResNeXtConfig, size) -> tuple[nn.Module, int, int, dict[str, int], int]:
    """(model, params, MACs, output elements per leaf module, logits numel) on the meta device."""
    height, width = (size, size) if isinstance(size, int) else size
    model = resnext.build_model(cfg, device="meta").eval()
    outputs: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if not list(module.children()) and not isinstance(module, nn.Identity):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: outputs.__setitem__(name, outputs.get(name, 0) + o.numel())))
    with FlopCounterMode(display=False) as counter:
        logits = model(torch.empty(1, 3, height, width, device="meta"))
    for hook in hooks:
        hook.remove()
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    params = sum(p.numel() for p in model.parameters())
    return model, params, flops // 2, outputs, logits.numel()


@pytest.mark.parametrize("cfg,size", PRESET_CASES + ODD_CASES + RANDOM_CASES)
def test_matches_numel_flopcounter_and_hooks(cfg, size):
    model, params, macs, outputs, _ = measure(cfg, size)
    report = resnext.complexity(cfg, size)
    assert report.params == params
    assert report.macs == macs
    assert report.activations == sum(outputs.values())
    if cfg.block_form == "c":
        # Same layers, same names, same order as the modules run.
        assert [layer.name for layer in report.layers] == list(outputs)
        assert {layer.name: layer.activations for layer in report.layers} == outputs


@pytest.mark.parametrize("cfg,size", PRESET_CASES[:6] + RANDOM_CASES[:8])
def test_segments_match_submodules(cfg, size):
    height, width = (size, size) if isinstance(size, int) else size
    model = resnext.build_model(cfg, device="meta").eval()
    report = resnext.complexity(cfg, size)
    assert [s.name for s in report.segments] == ["stem", *model.stage_names, "head"]
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, height, width, device="meta"))
    per_module = counter.get_flop_counts()
    for segment in report.stages:
        module = getattr(model, segment.name)
        assert segment.params == sum(p.numel() for p in module.parameters())
        assert segment.macs == sum(per_module[f"ResNeXt.{segment.name}"].values()) // 2
        assert segment.blocks == len(module)
        assert segment.out_channels == module[-1].plan.out_channels
    stem = report.segments[0]
    assert stem.params == sum(p.numel() for p in model.conv1.parameters()) + sum(
        p.numel() for p in model.bn1.parameters())
    assert report.segments[-1].params == sum(p.numel() for p in model.fc.parameters())
    assert sum(s.params for s in report.segments) == report.params


def test_stage_resolutions_follow_real_feature_maps():
    cfg = resnext.PRESETS["resnext50_32x4d"]
    model = resnext.build_model(cfg, device="meta")
    for size in (224, 97, 225):
        features = model.forward_features(torch.empty(1, 3, size, size, device="meta"))
        report = resnext.complexity(cfg, size)
        assert [(s.out_channels, s.out_height, s.out_width) for s in report.stages] == [
            tuple(f.shape[1:]) for f in features]
    assert [s.group_width for s in resnext.complexity(cfg, 224).stages] == [128, 256, 512, 1024]


def test_roles_add_up_and_cover_the_paper_names():
    report = resnext.complexity(resnext.PRESETS["resnext50_32x4d"], 224)
    roles = report.by_role()
    assert list(roles) == list(resnext.ROLES)
    assert sum(p for p, _ in roles.values()) == report.params
    assert sum(m for _, m in roles.values()) == report.macs
    # fc: 2048*1000 weights + 1000 bias; 2048*1000 MACs.
    assert roles["fc"] == (2_049_000, 2_048_000)
    table = report.by_segment_and_role()
    assert sum(p for seg in table.values() for p, _ in seg.values()) == report.params
    assert set(table["layer1"]) == {"reduce", "grouped", "expand", "shortcut"}


def test_forms_have_equal_weights_and_macs():
    base = resnext.PRESETS["resnext50_32x4d"]
    reports = {f: resnext.complexity(base.replace(block_form=f), 224) for f in "abc"}
    assert len({(r.params, r.macs) for r in reports.values()}) == 1
    # Form (a) keeps C full-width expand outputs per block: more activation memory.
    assert reports["a"].activations > reports["b"].activations == reports["c"].activations


def test_derived_figures():
    report = resnext.complexity(resnext.PRESETS["resnext50_32x4d"], 224)
    assert report.flops == 2 * report.macs
    assert report.weight_bytes == 4 * 25_028_904
    assert report.activation_bytes == 4 * report.activations
    assert report.depth == 50


@pytest.mark.parametrize("bad", [0, -1, 8193, 2.5, "224", (224,), (224, 0), True])
def test_bad_image_size(bad):
    with pytest.raises(ValueError, match="image_size"):
        resnext.complexity(resnext.PRESETS["resnet50"], bad)


def test_no_tensors_allocated_and_fast():
    # Arithmetic only: the largest config there is answers without touching torch.
    huge = ResNeXtConfig(cardinality=1024, bottleneck_width=16, stage_blocks=(64,) * 6)
    start = time.perf_counter()
    report = resnext.complexity(huge, 1024)
    assert time.perf_counter() - start < 5.0  # generous: the benchmark measures the real figure
    assert report.params > 9 * 10**11
