"""Make tests/data/torchvision_* with torchvision itself: a reference our library is tested against.

torchvision cannot be imported beside the project's CPU build of torch 2.13.0 (its compiled
operators do not load), so this script runs once, in a separate environment where a
matching pair installs, and its outputs are committed:

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 safetensors==0.8.0 pillow==12.3.0
    /tmp/tvenv/bin/python tools/make_torchvision_fixture.py

What it writes (read by tests/test_torchvision_fixture.py, in the main environment):

- torchvision_resnext.json: the architecture's arguments, torchvision's state-dict layout
  (every key, shape and dtype, in order), a checksum of every tensor the model held, and
  the versions used.
- torchvision_resnext.safetensors: a seeded input batch, torchvision's fp32 logits for it,
  and torchvision's ImageNet eval transform of assets/samples/sailboat_at_sunset.jpg for
  resnext50_32x4d's V1 (resize 256) and V2 (resize 232) weights on a PIL image (how the
  weights' docs use it), V2's also on a uint8 tensor (torch's own antialiased resize), plus
  the model's logits for the V2 photo.

Why the weights are a formula and not a file: torchvision's Bottleneck fixes the planes
(64..512) and the expansion (4), so even ResNet(Bottleneck, [1, 1, 1, 1], groups=4,
width_per_group=8) holds 4.05 M parameters (16 MB in fp32), and the fixture must stay
under 2 MB. So every tensor is filled from `formula_tensor` below (integer hashing in
numpy: the same values on any machine, no torch RNG involved), loaded into torchvision's
model with strict=True, and the JSON keeps a checksum of each tensor as torchvision held it,
so a test that regenerates the state dict proves it has the very tensors torchvision ran.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data"
PHOTO = ROOT / "assets" / "samples" / "sailboat_at_sunset.jpg"
# torchvision.models.resnet.ResNet(Bottleneck, **ARCH): a small ResNeXt (C=4, d=8), 10 classes.
ARCH = {"layers": [1, 1, 1, 1], "groups": 4, "width_per_group": 8, "num_classes": 10}
INPUT_SEED = 0
INPUT_SHAPE = (2, 3, 64, 64)
# resnext50_32x4d's weights: (resize, crop) of IMAGENET1K_V1 and IMAGENET1K_V2 (facts.md).
TRANSFORMS = {"V1": "IMAGENET1K_V1", "V2": "IMAGENET1K_V2"}


def _uniform(key: str, count: int) -> np.ndarray:
    """`count` values in [0, 1) from a splitmix64 hash of (key, index): exact integer maths."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around, as intended
        x = np.arange(count, dtype=np.uint64) + np.uint64(zlib.crc32(key.encode()) << 20)
        x = x * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(40)).astype(np.float64) / float(1 << 24)  # 24 bits: exact in fp32


def formula_tensor(key: str, shape: list[int], dtype: str) -> np.ndarray:
    """The fixture's value of state-dict entry `key`: Kaiming-uniform weights, BN statistics
    away from identity (so eval-mode BN does real work), zero `num_batches_tracked`."""
    if dtype == "int64":
        return np.zeros(shape, dtype=np.int64)
    u = _uniform(key, int(np.prod(shape, dtype=np.int64)) if shape else 1).reshape(shape)
    name = key.rsplit(".", 1)[-1]
    if len(shape) >= 2:  # conv or linear weight: uniform in +-sqrt(6 / fan_in)
        fan_in = int(np.prod(shape[1:]))
        values = (2 * u - 1) * math.sqrt(6 / fan_in)
    elif name in ("weight", "running_var"):  # BN scale and variance in [0.5, 1.5)
        values = 0.5 + u
    else:  # BN shift, running mean, fc bias in [-0.1, 0.1)
        values = (u - 0.5) * 0.2
    return values.astype(np.float32)


def checksum(array: np.ndarray) -> list[float]:
    """[sum, sum of squares, sum weighted by position] in float64: a fingerprint of a tensor."""
    flat = array.astype(np.float64).ravel()
    return [float(flat.sum()), float((flat * flat).sum()),
            float((flat * np.arange(1, flat.size + 1) / flat.size).sum())]


def main() -> None:
    import PIL
    import torch
    import torchvision
    from PIL import Image
    from safetensors.torch import save_file
    from torchvision.models import ResNeXt50_32X4D_Weights
    from torchvision.models.resnet import Bottleneck, ResNet
    from torchvision.transforms.functional import pil_to_tensor

    torch.manual_seed(0)
    model = ResNet(Bottleneck, **ARCH).eval()
    layout = [(key, list(t.shape), str(t.dtype).removeprefix("torch."))
              for key, t in model.state_dict().items()]
    state = {key: torch.from_numpy(formula_tensor(key, shape, dtype))
             for key, shape, dtype in layout}
    model.load_state_dict(state, strict=True)
    held = model.state_dict()
    assert all(t.dtype in (torch.float32, torch.int64) for t in held.values())  # an fp32 model

    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(INPUT_SEED))
    tensors = {"input": x}
    photo = Image.open(PHOTO).convert("RGB")
    for short, name in TRANSFORMS.items():
        transform = getattr(ResNeXt50_32X4D_Weights, name).transforms()
        tensors[f"photo_{short}_pil"] = transform(photo).contiguous()
        if short == "V2":  # one tensor-path example is enough (and keeps the file small)
            tensors[f"photo_{short}_tensor"] = transform(pil_to_tensor(photo)).contiguous()
    with torch.no_grad():
        tensors["logits"] = model(x)
        tensors["photo_V2_pil_logits"] = model(tensors["photo_V2_pil"][None])
    assert tensors["logits"].dtype == torch.float32

    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()},
              str(OUT / "torchvision_resnext.safetensors"))
    meta = {
        "made_by": "tools/make_torchvision_fixture.py",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "architecture": "torchvision.models.resnet.ResNet(Bottleneck, **arch)",
        "arch": ARCH,
        "weights": "formula_tensor(key, shape, dtype) of tools/make_torchvision_fixture.py",
        "input": f"torch.randn({INPUT_SHAPE}, generator=torch.Generator().manual_seed({INPUT_SEED}))",
        "photo": str(PHOTO.relative_to(ROOT)),
        "transforms": {short: repr(getattr(ResNeXt50_32X4D_Weights, name).transforms())
                       for short, name in TRANSFORMS.items()},
        "state_dict": [{"key": key, "shape": shape, "dtype": dtype,
                        "checksum": checksum(held[key].numpy())}
                       for key, shape, dtype in layout],
    }
    entries = meta.pop("state_dict")
    text = json.dumps(meta, indent=1)[:-2]  # one line per state-dict entry below: diffable
    text += ',\n "state_dict": [\n' + ",\n".join(f"  {json.dumps(e)}" for e in entries)
    (OUT / "torchvision_resnext.json").write_text(text + "\n ]\n}\n")
    for path in sorted(OUT.glob("torchvision_resnext.*")):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
