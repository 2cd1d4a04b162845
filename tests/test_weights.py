"""load_weights with checkpoints the tests write themselves: no network, no model hub."""

import hashlib
import http.server
import os
import pickle
import threading
from functools import partial

import pytest
import torch

import resnext
from resnext import weights as weights_module
from conftest import SMALL_CONFIGS, randomize_batchnorm

CFG = SMALL_CONFIGS[1]


def saved_model(tmp_path, cfg=CFG, name="ckpt.pth"):
    model = resnext.build_model(cfg)
    randomize_batchnorm(model, torch.Generator().manual_seed(3))
    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return model.eval(), path


def test_loads_a_state_dict_strictly(tmp_path):
    source, path = saved_model(tmp_path)
    target = resnext.load_weights(resnext.build_model(CFG), path)
    assert not target.training
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("form", ["a", "b"])
def test_form_c_checkpoint_loads_into_other_forms(tmp_path, form):
    source, path = saved_model(tmp_path)
    target = resnext.load_weights(resnext.build_model(CFG.replace(block_form=form)), path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (source(x) - target(x)).abs().max() <= 1e-4


def test_nested_and_dataparallel_checkpoints(tmp_path):
    source, _ = saved_model(tmp_path)
    path = tmp_path / "nested.pt"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in source.state_dict().items()}},
               path)
    target = resnext.load_weights(resnext.build_model(CFG), path)
    assert torch.equal(target.fc.weight, source.fc.weight)


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    _, path = saved_model(tmp_path, cfg=CFG.replace(num_classes=9, stage_blocks=(2, 1)))
    with pytest.raises(resnext.WeightsMismatchError) as info:
        resnext.load_weights(resnext.build_model(CFG.replace(stage_blocks=(2, 1, 1))), path)
    error = info.value
    assert "layer3.0.conv1.weight" in error.missing
    assert not error.unexpected
    # Two stages end in 512 channels, three in 1024; classes 9 vs 5.
    assert ("fc.weight", (9, 512), (5, 1024)) in error.mis_shaped
    assert ("fc.bias", (9,), (5,)) in error.mis_shaped
    message = str(error)
    assert "missing key(s)" in message and "mis-shaped key(s)" in message
    assert "fc.weight (checkpoint [9, 512], model [5, 1024])" in message
    state = torch.load(path, weights_only=True)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(resnext.WeightsMismatchError, match=r"1 unexpected key\(s\): extra.weight"):
        resnext.load_weights(resnext.build_model(CFG.replace(num_classes=9, stage_blocks=(2, 1))), path)


class _Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_running_pickle_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": _Exploit(str(marker))}, f)
    torch.save({"payload": _Exploit(str(marker))}, tmp_path / "evil2.pth")
    for file in (path, tmp_path / "evil2.pth"):
        with pytest.raises(resnext.CheckpointFileError, match="refused"):
            resnext.load_weights(resnext.build_model(CFG), file)
    assert not marker.exists()


@pytest.mark.parametrize("content,fragment", [
    (b"", "could not be read"),
    (b"this is not a checkpoint", "could not be read"),
])
def test_non_checkpoints(tmp_path, content, fragment):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(resnext.CheckpointFileError, match=fragment):
        resnext.load_weights(resnext.build_model(CFG), path)


def test_truncated_and_wrong_type(tmp_path):
    _, path = saved_model(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(resnext.CheckpointFileError, match="could not be read"):
        resnext.load_weights(resnext.build_model(CFG), path)
    torch.save([1, 2, 3], path)
    with pytest.raises(resnext.CheckpointFileError, match="does not hold a state_dict"):
        resnext.load_weights(resnext.build_model(CFG), path)
    with pytest.raises(resnext.CheckpointFileError, match="no checkpoint file"):
        resnext.load_weights(resnext.build_model(CFG), tmp_path / "absent.pth")


def test_unknown_published_name():
    with pytest.raises(resnext.WeightsError, match="unknown weights 'resnext50_32x4d.IMAGENET1K_V9'"):
        resnext.load_weights(resnext.build_model(CFG), "resnext50_32x4d.IMAGENET1K_V9")


def test_published_table():
    table = resnext.PUBLISHED_WEIGHTS
    assert len(table) == 7
    v2 = table["resnext50_32x4d.IMAGENET1K_V2"]
    assert v2.url == "https://download.pytorch.org/models/resnext50_32x4d-1a0047aa.pth"
    assert v2.hash_prefix == "1a0047aa" and (v2.resize_size, v2.crop_size) == (232, 224)
    assert table["resnet50.IMAGENET1K_V1"].resize_size == 256
    for entry in table.values():
        assert entry.preset in resnext.PRESETS


@pytest.fixture
def served_checkpoint(tmp_path, monkeypatch):
    """A checkpoint served over loopback HTTP under a torchvision-style hashed name."""
    source, path = saved_model(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    serve_dir = tmp_path / "served"
    serve_dir.mkdir()
    filename = f"tiny-{digest[:8]}.pth"
    (serve_dir / filename).write_bytes(path.read_bytes())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(serve_dir))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{filename}"
    entry = resnext.PublishedWeights("tiny.IMAGENET1K_V1", "resnet50", url, 1.0, 2.0, 256, 224)
    monkeypatch.setattr(weights_module, "PUBLISHED_WEIGHTS", {entry.name: entry})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    yield source, entry, serve_dir
    server.shutdown()


def test_published_weights_download_then_cache(served_checkpoint, tmp_path):
    source, entry, serve_dir = served_checkpoint
    model = resnext.load_weights(resnext.build_model(CFG), entry.name, progress=False)
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / entry.filename
    assert cached.is_file()
    assert torch.equal(model.fc.weight, source.fc.weight)
    # Second load is from the cache: it works with the server's file gone.
    (serve_dir / entry.filename).unlink()
    resnext.load_weights(resnext.build_model(CFG), entry.name, progress=False)


def test_hash_mismatch_is_refused(served_checkpoint, tmp_path):
    _, entry, serve_dir = served_checkpoint
    (serve_dir / entry.filename).write_bytes(b"tampered" * 100)
    with pytest.raises(resnext.WeightsUnavailableError, match="could not download"):
        resnext.load_weights(resnext.build_model(CFG), entry.name, progress=False)
    assert not (tmp_path / "torch_home" / "hub" / "checkpoints" / entry.filename).exists()


def test_offline_error_names_url_and_cache_path(tmp_path, monkeypatch):
    # Port 9 on loopback: nothing listens, the connection is refused as it is offline.
    entry = resnext.PublishedWeights("gone.IMAGENET1K_V1", "resnet50",
                                     "http://127.0.0.1:9/resnet50-0676ba61.pth", 1, 2, 256, 224)
    monkeypatch.setattr(weights_module, "PUBLISHED_WEIGHTS", {entry.name: entry})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(resnext.WeightsUnavailableError) as info:
        resnext.load_weights(resnext.build_model(CFG), entry.name, progress=False)
    message = str(info.value)
    assert entry.url in message
    assert os.path.join(str(tmp_path), "hub", "checkpoints", "resnet50-0676ba61.pth") in message
