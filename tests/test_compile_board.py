"""Faster long runs (issue 18, section 5): --compile with its eager fallback and the
estimate's verdict, and --tensorboard's event files (metrics.jsonl stays the truth)."""

import json
import warnings

import pytest
import torch
from torch import nn

from resnext import ResNeXtConfig, data, train
from resnext.train import board, engine, runs
from resnext.train.__main__ import EXIT_USAGE, main

TINY = ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)


@pytest.fixture(scope="module")
def images():
    return data.shapes(n_train=128, n_test=32, image_size=16, seed=2)


class Broken(nn.Module):
    """What a compile that fails looks like: the first call raises."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        self.module(x)  # moves BatchNorm's running statistics, as a half-run graph may
        raise RuntimeError("InductorError: no working C compiler\nmore detail")


def test_a_failed_compile_trains_eagerly_the_same_run_and_says_so(tmp_path, images,
                                                                  monkeypatch):
    torch.set_num_threads(1)
    plain = train.fit(TINY, images, epochs=1, batch_size=32, seed=3, out_dir=tmp_path / "a")
    monkeypatch.setattr(engine, "_compiled", Broken)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fell_back = train.fit(TINY, images, epochs=1, batch_size=32, seed=3, compile=True,
                              out_dir=tmp_path / "b")
    status = runs.read_status(tmp_path / "b")
    assert status["state"] == "finished"
    assert status["note"].startswith("torch.compile failed (RuntimeError: InductorError: no "
                                     "working C compiler)")
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert fell_back.history[0][key] == plain.history[0][key]  # buffers restored
    assert runs.read_config(tmp_path / "b")["compile"] is True


def test_a_failed_compile_in_the_estimate_says_the_run_would_train_eagerly(images,
                                                                           monkeypatch):
    monkeypatch.setattr(engine, "_compiled", Broken)
    warnings.simplefilter("error", RuntimeWarning)  # the verdict says it; nothing warns
    guess = train.estimate(TINY, images, epochs=1, batch_size=32, compile=True)
    assert guess.compile.failed and not guess.compile.pays
    assert "the run would train eagerly" in guess.compile.phrase


def test_the_compile_verdict_weighs_compile_time_against_time_saved():
    verdict = train.estimation.CompileVerdict(True, compile_seconds=30.0, speedup=1.2,
                                              saved_seconds=20.0, steps=100)
    assert not verdict.pays and "does not pay" in verdict.phrase
    assert "measured just now" in verdict.phrase
    verdict = train.estimation.CompileVerdict(True, 30.0, 1.2, 45.0, 1000)
    assert verdict.pays and "torch.compile pays" in verdict.phrase


def test_tensorboard_event_files_hold_the_runs_scalars(tmp_path, images):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    result = train.fit(TINY, images, epochs=2, batch_size=32, out_dir=tmp_path / "run",
                       tensorboard=True)
    folder = tmp_path / "run" / runs.TENSORBOARD_DIR
    assert any(path.name.startswith("events.out.tfevents") for path in folder.iterdir())
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"Train/loss", "Train/lr", *board.EPOCH_TAGS} <= tags
    for tag, key in board.EPOCH_TAGS.items():
        values = [(e.step, e.value) for e in events.Scalars(tag)]
        assert values == [(row["epoch"], pytest.approx(row[key], rel=1e-6))
                          for row in result.history]
    assert runs.read_config(tmp_path / "run")["tensorboard"] is True


def test_tensorboard_missing_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(board, "available", lambda: False)
    code = main(["--data", "shapes", "--image-size", "16", "--train-size", "64", "--epochs",
                 "1", "--tensorboard", "--out", str(tmp_path / "r")], handle_signals=False)
    assert code == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "pip install tensorboard" in err and "\n" not in err
    assert not (tmp_path / "r").exists()
