"""The Train tab's services: requests and their limits, datasets on offer, the preview, the
estimate, and real training processes followed through their run folders."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import resnext
from explorer.selection import Selection
from explorer.shared import drawing
from explorer.train import requests as service
from explorer.train import views
from explorer.train.jobs import TrainingManager
from resnext.train.runs import pid_alive, read_run

TINY = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,
                             stage_blocks=(1, 1), stem="cifar", num_classes=6)


def request(data_dir: Path, **changes) -> service.TrainRequest:
    values = dict(data="shapes", image_size=16, train_size=256, test_size=64, epochs=1,
                  batch_size=64, recipe="quick", lr=None, seed=0, device="cpu")
    values.update(changes)
    return service.make_request(Selection(TINY, 32), data_dir=data_dir, **values)


def wait_for(manager: TrainingManager, run_id: str, states: tuple[str, ...],
             timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = manager.status(run_id)
        if status["run"]["state"] in states:
            return status
        time.sleep(0.2)
    raise AssertionError(f"{run_id} did not reach {states}: {manager.status(run_id)}")


# Requests ---------------------------------------------------------------------------------

def test_request_fits_the_head_to_the_data_and_builds_the_cli_arguments(tmp_path):
    assert request(tmp_path, lr="").lr is None and request(tmp_path, lr=" 0.2 ").lr == 0.2
    made = request(tmp_path, epochs=2.0, lr=0.05)
    assert made.config.num_classes == 6 and made.epochs == 2 and made.lr == 0.05
    args = made.argv(tmp_path / "run", tmp_path)
    assert args[args.index("--data") + 1] == "shapes"
    assert json.loads(args[args.index("--config") + 1])["base_planes"] == 8
    assert args[args.index("--image-size") + 1] == "16" and "--lr" in args
    cifar = request(tmp_path, data="cifar100", image_size=99)
    assert cifar.config.num_classes == 100 and cifar.image_size == 32  # CIFAR is 32 x 32


@pytest.mark.parametrize("changes,message", [
    (dict(epochs=0), "epochs must be an integer in [1, 10000], got 0"),
    (dict(batch_size=1), "batch size must be an integer in [2, 65536], got 1"),
    (dict(train_size=2.5), "training images must be an integer"),
    (dict(train_size=1), "training images must be an integer in [2, 1000000], got 1"),
    (dict(image_size=8), "image size must be an integer in [16, 512], got 8"),
    (dict(lr=0), "learning rate must be a number in (0, 10] (or empty for the recipe's own), "
                 "got 0"),
    (dict(lr=-1.0), "learning rate must be a number in"),
    (dict(lr="fast"), "learning rate must be a number in"),
    (dict(data="imagenet"), "dataset must be one of shapes, shapes-shortcut, shapes-distractors, "
                            "cifar10"),
    (dict(data="folder:../etc"), "dataset must be one of"),
    (dict(recipe="adam"), "recipe must be one of"),
    (dict(device="cuda; rm -rf /"), "device must be cpu, cuda, cuda:N or mps"),
])
def test_bad_values_are_refused_under_their_controls_names(tmp_path, changes, message):
    with pytest.raises(ValueError) as info:
        request(tmp_path, **changes)
    assert message in str(info.value)


def test_the_tabs_controls_take_the_librarys_training_limits(tmp_path):
    """One range per value: each control is bounded by resnext.train.limits, and a value
    just outside it is refused by the request check as by the library."""
    import gradio as gr

    from explorer.context import AppOptions
    from explorer.train import tab
    from resnext.train import limits

    with gr.Blocks():
        settings = tab.Settings(SimpleNamespace(options=AppOptions(data_dir=tmp_path)))
    controls = {"image_size": (settings.image_size, limits.IMAGE_SIZE_RANGE),
                "epochs": (settings.epochs, limits.EPOCHS_RANGE),
                "train_size": (settings.train_size, limits.TRAIN_IMAGES_RANGE),
                "test_size": (settings.test_size, limits.TEST_IMAGES_RANGE),
                "batch_size": (settings.batch_size, limits.BATCH_RANGE),
                "seed": (settings.seed, limits.SEED_RANGE)}
    for name, (control, (low, high)) in controls.items():
        assert (control.minimum, control.maximum) == (low, high), name
        assert getattr(request(tmp_path, **{name: low}), name) == low
        assert getattr(request(tmp_path, **{name: high}), name) == high
        for outside in (low - 1, high + 1):
            with pytest.raises(ValueError, match=rf"in \[{low}, {high}\], got {outside}"):
                request(tmp_path, **{name: outside})
    assert request(tmp_path, lr=limits.LR_RANGE[1]).lr == limits.LR_RANGE[1]


def test_the_datasets_on_offer_are_the_registrys(tmp_path, monkeypatch):
    from resnext.data import registry
    from resnext.train.__main__ import parser

    builtin = [name for name, entry in registry.DATASETS.items() if not entry.takes_path]
    choices = service.dataset_choices(tmp_path)
    assert choices == [(registry.DATASETS[name].description, name) for name in builtin]
    assert [service.downloadable(name) for name in builtin] == [
        registry.DATASETS[name].downloadable for name in builtin]
    # A new dataset is one entry: the tab offers it, the CLI's --data names it.
    entry = dataclasses.replace(registry.DATASETS["shapes"], name="shapes-new",
                                description="shapes, but new")
    monkeypatch.setitem(registry.DATASETS, entry.name, entry)
    assert ("shapes, but new", "shapes-new") in service.dataset_choices(tmp_path)
    made = request(tmp_path, data="shapes-new")
    assert made.config.num_classes == 6 and "--image-size" in made.argv(tmp_path, tmp_path)
    assert "shapes-new: shapes, but new" in " ".join(parser().format_help().split())


def test_only_folders_inside_the_data_directory_are_offered(tmp_path):
    pets = tmp_path / "pets"
    for name in ("cat", "dog"):
        (pets / name).mkdir(parents=True)
    (tmp_path / "lonely" / "only").mkdir(parents=True)  # one class: not a dataset
    (tmp_path / "cifar-10-batches-bin").mkdir()  # CIFAR's own folder: offered as cifar10
    values = [value for _, value in service.dataset_choices(tmp_path)]
    assert values == ["shapes", "shapes-shortcut", "shapes-distractors", "cifar10", "cifar100",
                      "folder:pets"]
    assert request(tmp_path, data="folder:pets").config.num_classes == 2
    with pytest.raises(ValueError, match="no image folder"):
        service.folder_path(tmp_path, "../pets")


# Preview and estimate ------------------------------------------------------------------------

def test_outline_is_the_masks_boundary():
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    edge = drawing.outline(mask)
    assert edge.sum() == 12 and not edge[2:4, 2:4].any() and edge[1, 1] and not edge[0, 0]


def test_preview_shows_a_dozen_training_images_with_their_class_and_outline(tmp_path):
    items = service.preview(request(tmp_path, data="shapes-shortcut"), tmp_path)
    pair = resnext.data.shapes(n_train=12, n_test=1, image_size=16, seed=0, shortcut=0.9)
    assert [caption for _, caption in items] == [pair.classes[int(l)] for l in pair.train.labels]
    picture = items[0][0]
    assert picture.shape == (96, 96, 3)  # 16 px enlarged 6x for the gallery
    small = picture[::6, ::6]
    yellow = np.all(small == (255, 255, 0), axis=-1)
    cyan = np.all(small == (0, 255, 255), axis=-1)
    assert np.array_equal(yellow | cyan, drawing.outline(pair.train.masks[0].numpy())
                          | drawing.outline(pair.train.marker_masks[0].numpy()))


def test_estimate_in_words_and_a_smaller_variant_only_when_long(tmp_path, monkeypatch):
    made = request(tmp_path)
    forecast = service.forecast(made, tmp_path)
    assert forecast.seconds > 0 and forecast.peak_bytes > 0
    assert "**Estimate:** about" in forecast.text and forecast.smaller is None
    big = service.make_request(Selection(resnext.PRESETS["resnext50_32x4d"], 224),
                               data_dir=tmp_path, **{**dict(data="shapes", image_size=32,
                               train_size=256, test_size=64, epochs=1, batch_size=64,
                               recipe="quick", lr=None, seed=0, device="cpu")})
    monkeypatch.setattr(service, "LONG_RUN_SECONDS", 0)
    long = service.forecast(big, tmp_path)
    assert long.smaller is not None and "That is long" in long.text
    smaller = long.smaller.config
    assert smaller.stage_blocks == (1, 1, 1, 1) and smaller.base_planes == 16
    assert resnext.complexity(smaller, 32).macs < resnext.complexity(big.config, 32).macs / 10


# Real training processes ------------------------------------------------------------------------

def test_a_run_trains_in_its_own_process_and_its_weights_score_what_it_reported(tmp_path):
    manager = TrainingManager(tmp_path / "runs", tmp_path / "data")
    run_id = manager.start(request(tmp_path))
    status = wait_for(manager, run_id, ("finished", "failed", "stopped"))
    assert status["run"]["state"] == "finished", status
    assert len(status["history"]) == 1 and status["run"]["epochs_done"] == 1
    assert [r.run_id for r in manager.runs()] == [run_id]
    # The saved weights, measured again on the rebuilt test split, score what was reported.
    report = views.run_report(manager.runs_dir / run_id)
    assert report.accuracy == pytest.approx(status["history"][-1]["test_accuracy"], abs=1e-9)
    assert report.confusion().sum() == 64
    assert sum(total for _, total, _ in report.per_class_accuracy()) == 64
    gallery = views.prediction_gallery(report)
    wrong = int((report.labels != report.predictions).sum())
    assert [c.startswith("✗") for _, c in gallery[:wrong]] == [True] * min(wrong, len(gallery))
    figure = views.confusion_figure(report)
    assert np.array(figure.data[0].customdata).sum() == 64
    curves = views.curves_figure(status)
    test_accuracy = next(t for t in curves.data if t.name == "test accuracy")
    assert list(test_accuracy.y) == [status["history"][0]["test_accuracy"]]


def test_stop_keeps_the_last_whole_epoch_and_a_second_run_waits_its_turn(tmp_path):
    manager = TrainingManager(tmp_path / "runs", tmp_path / "data")
    first = manager.start(request(tmp_path, epochs=50))
    second = manager.start(request(tmp_path, seed=1))
    assert manager.queue_position(second) == 1
    assert "waiting: number 1 in line" in views.progress_html(manager.status(second))
    assert "Removed" in manager.stop(second)  # a queued run is dropped before it starts
    assert manager.queue_position(second) is None
    deadline = time.monotonic() + 120
    while not manager.status(first)["history"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "Stopping" in manager.stop(first)
    status = wait_for(manager, first, ("stopped", "finished", "failed"), timeout=60)
    assert status["run"]["state"] == "stopped"
    assert 1 <= len(status["history"]) < 50
    assert (manager.runs_dir / first / "model.safetensors").exists()
    assert manager.active_run() is None


def test_a_run_whose_process_died_reads_as_interrupted(tmp_path):
    run_dir = tmp_path / "runs" / "old"
    run_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / "config.json").write_text(json.dumps({
        "model": TINY.to_dict(), "data": {"name": "shapes"}, "epochs": 3,
        "environment": {"device": "cpu"}}))
    (run_dir / "status.json").write_text(json.dumps({
        "state": "running", "pid": dead.pid, "started_at": "2026-01-01T00:00:00Z"}))
    assert not pid_alive(dead.pid) and not pid_alive(os.getpid())  # not a training process
    record = read_run(run_dir)
    assert record.state == "interrupted" and record.network == TINY.name
    assert TrainingManager(tmp_path / "runs", tmp_path).active_run() is None


def test_a_run_that_cannot_start_is_failed_with_the_reason(tmp_path):
    pets = tmp_path / "data" / "pets"
    for name in ("cat", "dog"):
        (pets / name).mkdir(parents=True)
    manager = TrainingManager(tmp_path / "runs", tmp_path / "data")
    run_id = manager.start(request(tmp_path / "data", data="folder:pets"))  # no images in it
    status = wait_for(manager, run_id, ("failed", "finished"), timeout=60)
    assert status["run"]["state"] == "failed"
    assert "image" in (status["run"]["error"] or "").lower()
    with pytest.raises(ValueError, match="not a run id"):
        manager.status("../etc")


# Through the real app's HTTP API -----------------------------------------------------------------

def test_train_api_start_status_runs_and_use_run(client, app_dirs):
    tiny = json.dumps({**TINY.to_dict(), "image_size": 16})
    started = client.predict(tiny, "shapes", 16, 256, 64, 1, 64, "quick", None, 0, "cpu",
                             api_name="/train_start")
    run_id = started["run_id"]
    assert started["request"]["config"]["num_classes"] == 6
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.predict(run_id, api_name="/train_status")
        if status["run"]["state"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert status["run"]["state"] == "finished", status
    assert len(status["history"]) == 1
    listed = client.predict(api_name="/runs")
    assert [r["run_id"] for r in listed if r["run_id"] == run_id] == [run_id]
    assert (app_dirs[0] / run_id / "model.safetensors").exists()
    used = client.predict(run_id, api_name="/use_run")
    assert used["config"]["base_planes"] == 8 and used["image_size"] == 16
    assert used["weights"] == f"trained run {run_id}"
    assert "is not running (it is finished)" in client.predict(run_id, api_name="/train_stop")
    # The session now runs the trained network: a forward pass names the dataset's classes.
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="not a run id"):
        client.predict("../../etc", api_name="/train_status")


def test_cifar_not_on_disk_says_which_file_to_put_where(tmp_path):
    from explorer.errors import user_message

    made = request(tmp_path, data="cifar10")
    with pytest.raises(Exception) as info:
        service.preview(made, tmp_path)
    message = user_message("before_start", info.value)
    assert message.startswith("cifar10 not found: put cifar-10-binary.tar.gz")
    assert "c32a1d4ab5d03f1284b67883e8d87530" in message and str(tmp_path) in message
