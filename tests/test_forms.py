"""Fig. 3's three forms compute the same function; convert_form moves weights exactly."""

import pytest
import torch

import resnext
from conftest import SMALL_CONFIGS, randomize_batchnorm


def trained_like(cfg):
    model = resnext.build_model(cfg.replace(block_form="c"))
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    return model.eval()


@pytest.mark.parametrize("cfg", SMALL_CONFIGS)
def test_three_forms_give_the_same_outputs(cfg):
    model_c = trained_like(cfg)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        reference = model_c(x)
        for form in "ab":
            other = resnext.convert_form(model_c, form)
            assert other.config.block_form == form
            assert type(other.layer1[0]).__name__ == f"Bottleneck{form.upper()}"
            assert (reference - other(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("cfg", SMALL_CONFIGS[:4])
def test_round_trips_are_exact(cfg):
    model_c = trained_like(cfg)
    state_c = model_c.state_dict()
    back = resnext.convert_form(resnext.convert_form(resnext.convert_form(model_c, "a"), "b"), "c")
    assert back.state_dict().keys() == state_c.keys()
    for key, value in state_c.items():
        assert torch.equal(back.state_dict()[key], value), key


def test_forms_are_built_as_drawn():
    cfg = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1,), stem="cifar")
    a = resnext.build_model(cfg.replace(block_form="a")).layer1[0]
    b = resnext.build_model(cfg.replace(block_form="b")).layer1[0]
    c = resnext.build_model(cfg).layer1[0]
    assert len(a.paths) == len(b.paths) == 4
    assert a.paths[0].conv1.in_channels == 64 and a.paths[0].conv1.out_channels == 2
    assert a.paths[0].conv3.out_channels == 256 and not hasattr(a, "conv3")
    assert b.paths[0].conv3 is None and b.conv3.in_channels == 8
    assert c.conv2.groups == 4 and not hasattr(c, "paths")
    assert all(m.groups == 1 for m in a.modules() if isinstance(m, torch.nn.Conv2d))


def test_convert_keeps_mode_dtype_and_does_not_share_storage():
    model = trained_like(SMALL_CONFIGS[0]).double().train()
    a = resnext.convert_form(model, "a")
    assert a.training and next(a.parameters()).dtype == torch.float64
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    assert not torch.equal(model.fc.weight, a.fc.weight)


def test_gradients_agree_across_forms():
    model_c = trained_like(SMALL_CONFIGS[1])
    model_b = resnext.convert_form(model_c, "b")
    x = torch.randn(1, 3, 32, 32)
    grads = []
    for model in (model_c, model_b):
        xi = x.clone().requires_grad_(True)
        model(xi)[0, 1].backward()
        grads.append(xi.grad)
    assert (grads[0] - grads[1]).abs().max().item() <= 1e-4


def test_convert_form_rejects_bad_input():
    with pytest.raises(ValueError, match="form must be one of"):
        resnext.convert_form(trained_like(SMALL_CONFIGS[0]), "d")
    with pytest.raises(TypeError):
        resnext.convert_form(torch.nn.Linear(2, 2), "a")
