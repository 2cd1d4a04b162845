"""Fingerprints of the data and training code, to show a refactor changed no bit of either.

Prints one JSON object: the SHA-256 of a seeded shapes batch (with and without the shortcut
marker: images, labels, masks, marker masks and labels), and of a tiny seeded run: its final
weights, its metrics.jsonl without the timing keys, and the sequence of its progress events
without timing. Run it on the code before a change and after, with the same thread count,
and compare the two outputs:

    PYTHONPATH=/path/to/old/checkout python tools/train_fingerprint.py > before.json
    PYTHONPATH=. python tools/train_fingerprint.py > after.json
    diff before.json after.json

Uses only the public API (`resnext.data.shapes`, `resnext.train.fit`), so that it runs on
either side of a refactor.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import torch

TIMING_KEYS = ("seconds", "images_per_second", "eta_seconds")


def tensor_hash(*tensors: torch.Tensor | None) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is not None:
            digest.update(str(tensor.dtype).encode() + str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def shapes_hash(shortcut: float | None) -> str:
    from resnext import data

    pair = data.shapes(n_train=300, n_test=100, image_size=32, seed=7, shortcut=shortcut)
    parts = []
    for split in (pair.train, pair.test):
        parts += [split.images, split.labels, split.masks, split.marker_masks,
                  split.marker_labels]
    return tensor_hash(*parts)


def untimed(value):
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    return value


def run_fingerprint(epochs: int = 2) -> dict:
    from resnext import ResNeXtConfig, data, train

    cfg = ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8, stage_blocks=(1, 1),
                        stem="cifar", num_classes=6)
    pair = data.shapes(n_train=256, n_test=64, image_size=32, seed=0)
    events = []
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        result = train.fit(cfg, pair, epochs=epochs, batch_size=64, seed=3, out_dir=run,
                           on_progress=lambda event: events.append(untimed(event)))
        metrics = [untimed(json.loads(line))
                   for line in (run / "metrics.jsonl").read_text().splitlines()]
        # Tensors and metadata, not the file's bytes: safetensors writes its metadata map
        # in no fixed order.
        from safetensors import safe_open

        with safe_open(str(run / "model.safetensors"), framework="pt") as file:
            saved = tensor_hash(*(file.get_tensor(name) for name in sorted(file.keys())))
            metadata = file.metadata()
    state = result.model.state_dict()
    return {
        "saved_tensors_sha256": saved, "saved_metadata": metadata,
        "state_dict_sha256": tensor_hash(*(state[name] for name in sorted(state))),
        "metrics": metrics,
        # Step events go out by the clock (every 0.5 s), so which steps report depends on
        # the machine's speed: keep the per-epoch and final events, and every step's loss.
        "events": [e for e in events if e["kind"] != "step"],
        "step_losses_sha256": hashlib.sha256(json.dumps(
            [(e["global_step"], e["loss"], e["lr"]) for e in events if e["kind"] == "step"
             and e["step"] in (1, e["steps"])]).encode()).hexdigest(),
    }


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__,
                      "shapes": shapes_hash(None), "shapes_shortcut": shapes_hash(0.9),
                      "run": run_fingerprint()}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
