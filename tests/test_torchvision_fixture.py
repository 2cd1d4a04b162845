"""The library against torchvision itself: a fixture torchvision made, in its own environment.

tests/data/torchvision_resnext.* were written by tools/make_torchvision_fixture.py, run with
torch 2.14.1 + torchvision 0.29.1 (torchvision's compiled operators do not load beside this
CPU build of torch 2.13.0, so it cannot be imported here). They hold torchvision's state-dict
layout and per-tensor checksums for ResNet(Bottleneck, [1, 1, 1, 1], groups=4,
width_per_group=8, num_classes=10), its fp32 logits for a seeded input, and its ImageNet
eval transforms of a sample photo. The weights are a formula (see the tool: 4 M parameters
would not fit a small fixture); the checksums prove the test regenerates the very tensors
torchvision ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import resnext
from tools.make_torchvision_fixture import checksum, formula_tensor

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
META = json.loads((DATA / "torchvision_resnext.json").read_text(encoding="utf-8"))
TENSORS = load_file(str(DATA / "torchvision_resnext.safetensors"))
PHOTO = ROOT / META["photo"]
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]


def config_for(arch: dict) -> resnext.ResNeXtConfig:
    # torchvision's groups = C and width_per_group = d; its ResNet stem is the ImageNet one.
    return resnext.ResNeXtConfig(cardinality=arch["groups"], bottleneck_width=arch["width_per_group"],
                                 stage_blocks=tuple(arch["layers"]), num_classes=arch["num_classes"],
                                 stem="imagenet")


@pytest.fixture(scope="module")
def torchvision_state() -> dict[str, torch.Tensor]:
    state = {entry["key"]: torch.from_numpy(formula_tensor(entry["key"], entry["shape"], entry["dtype"]))
             for entry in META["state_dict"]}
    for entry in META["state_dict"]:  # the tensors torchvision held, value for value
        assert np.allclose(checksum(state[entry["key"]].numpy()), entry["checksum"],
                           rtol=1e-12, atol=1e-12), entry["key"]
    return state


def test_fixture_is_an_fp32_torchvision_model():
    assert META["torchvision"].startswith("0.29.1") and META["arch"]["groups"] == 4
    assert {entry["dtype"] for entry in META["state_dict"]} == {"float32", "int64"}
    assert TENSORS["logits"].dtype == torch.float32 and TENSORS["logits"].shape == (2, 10)


def test_our_state_dict_layout_is_torchvisions():
    model = resnext.build_model(config_for(META["arch"]), device="meta")
    ours = [(key, list(t.shape), str(t.dtype).removeprefix("torch."))
            for key, t in model.state_dict().items()]
    assert ours == [(e["key"], e["shape"], e["dtype"]) for e in META["state_dict"]]


def test_torchvisions_weights_give_torchvisions_logits(torchvision_state):
    model = resnext.build_model(config_for(META["arch"])).eval()
    model.load_state_dict(torchvision_state, strict=True)
    with torch.no_grad():
        logits = model(TENSORS["input"])
        photo_logits = model(TENSORS["photo_V2_pil"][None])
    # Measured: identical to the last bit on an idle machine (logits up to ~68); under load
    # oneDNN may sum in another order and one logit moved by 2e-5 (3e-7 of the largest). The
    # tolerance leaves room for such kernels only: a wrong weight moves logits by far more.
    torch.testing.assert_close(logits, TENSORS["logits"], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(photo_logits, TENSORS["photo_V2_pil_logits"], rtol=1e-5, atol=1e-4)
    # Every form of the paper's Fig. 3 computes the same function from the same weights.
    for form in ("a", "b"):
        with torch.no_grad():
            other = resnext.convert_form(model, form).eval()(TENSORS["input"])
        torch.testing.assert_close(other, TENSORS["logits"], rtol=1e-4, atol=1e-3)


def test_a_wrong_weight_changes_the_logits(torchvision_state):
    """The comparison above can fail: one grouped conv's groups swapped is caught."""
    state = dict(torchvision_state)
    weight = state["layer2.0.conv2.weight"]  # (64, 16, 3, 3): 4 groups of 16 outputs
    state["layer2.0.conv2.weight"] = torch.cat([weight[16:], weight[:16]])
    model = resnext.build_model(config_for(META["arch"])).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = model(TENSORS["input"])
    assert (logits - TENSORS["logits"]).abs().max() > 1e-2


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_preprocess_is_torchvisions_transform_of_a_pil_image(version):
    ours = resnext.preprocess(PHOTO, weights=f"resnext50_32x4d.IMAGENET1K_{version}")[0]
    # Same Pillow resize, same crop, same normalisation: measured bit-identical (max 0.0).
    torch.testing.assert_close(ours, TENSORS[f"photo_{version}_pil"], rtol=0, atol=1e-6)


def test_preprocess_against_torchvisions_tensor_resize():
    """On a uint8 tensor torchvision resizes with torch's own antialiased kernel, which rounds
    differently from Pillow's fixed-point one. Measured on this photo (V2, 232 -> 224): at most
    1.00 grey level apart (0.0175 after normalisation), 0.108 grey levels on average."""
    ours = resnext.preprocess(PHOTO, weights="resnext50_32x4d.IMAGENET1K_V2")[0]
    grey_levels = (ours - TENSORS["photo_V2_tensor"]).abs() * IMAGENET_STD * 255
    assert grey_levels.max() <= 1.0 + 1e-3
    assert grey_levels.mean() <= 0.15
    # ... and the check can tell transforms apart: V1's 256 resize is far from V2's tensor.
    v1 = resnext.preprocess(PHOTO, weights="resnext50_32x4d.IMAGENET1K_V1")[0]
    assert ((v1 - TENSORS["photo_V2_tensor"]).abs() * IMAGENET_STD * 255).mean() > 2
