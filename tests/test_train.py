"""resnext.train: fit, the run folder, load_run, estimate, recipes and schedules."""

import dataclasses
import json
import math

import pytest
import torch

import resnext
from resnext import ResNeXtConfig, data, train
from resnext.train import engine, runs

# 2 stages, 16x16 images: an epoch of a few hundred images takes about a second.
TINY = ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)
TIMING_KEYS = {"seconds", "images_per_second"}
# Flips and shifted crops move the shortcut marker between corners, which slows learning
# it from a few hundred images: the main run trains without augmentation, at a higher rate.
PLAIN = dataclasses.replace(train.RECIPES["quick"], padding=0, flip=False, lr=1e-2)
EPOCHS, BATCH = 4, 32


@pytest.fixture(scope="module")
def tiny_data():
    # shortcut=1: in training the marker's colour always tells the class; in the test split
    # markers are random. The marker is what a small network learns first.
    return data.shapes(n_train=384, n_test=192, image_size=16, seed=5, shortcut=1.0)


@pytest.fixture(scope="module")
def few_images():
    """3 steps of 32 per epoch: for what needs runs, not learning."""
    return data.shapes(n_train=96, n_test=32, image_size=16, seed=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    events = []
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    engine_interval = engine.PROGRESS_INTERVAL_S
    engine.PROGRESS_INTERVAL_S = 0.0  # every step's event, to see the loss fall
    try:
        result = train.fit(TINY, tiny_data, epochs=EPOCHS, batch_size=BATCH, seed=0,
                           recipe=PLAIN, out_dir=folder, on_progress=events.append)
    finally:
        engine.PROGRESS_INTERVAL_S = engine_interval
    return result, events, folder


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_loss_falls_and_history_has_every_key(tiny_run):
    result, events, _ = tiny_run
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    for row in result.history:
        assert set(row) == set(runs.METRIC_KEYS)
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["images_per_second"] > 0
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == 48 and steps[-1]["steps_total"] == 48
    first = sum(e["loss"] for e in steps[:4]) / 4
    last = sum(e["loss"] for e in steps[-4:]) / 4
    assert last < 0.7 * first, (first, last)
    losses = [row["train_loss"] for row in result.history]
    assert losses == sorted(losses, reverse=True)
    kinds = [e["kind"] for e in events]
    assert kinds.count("epoch") == 4 and kinds[-1] == "done"
    # One event builder: every kind has the same keys in the same order, then its own.
    common = ["kind", "epoch", "epochs", "step", "steps", "steps_total", "global_step", "loss",
              "lr", "images_per_second", "eta_seconds"]
    own = {"step": [], "epoch": ["metrics"], "done": ["stopped", "metrics"]}
    for event in events:
        assert list(event) == common + own[event["kind"]]
    assert events[-1]["eta_seconds"] == 0.0 and not events[-1]["stopped"]
    assert events[-1]["metrics"] == result.history[-1] and events[-1]["global_step"] == 48


def test_run_folder_files(tiny_run, tiny_data):
    result, _, folder = tiny_run
    assert result.run_dir == folder
    config = json.loads((folder / "config.json").read_text())
    assert ResNeXtConfig.from_dict(config["model"]) == TINY
    assert config["data"]["name"] == "shapes-shortcut" and config["data"]["shortcut"] == 1.0
    assert config["data"]["sizes"] == {"train": 384, "test": 192}
    assert config["data"]["classes"] == list(tiny_data.classes)
    assert config["data"]["mean"] == list(tiny_data.mean)
    assert config["recipe"]["lr"] == 1e-2 and config["recipe"]["flip"] is False
    assert config["epochs"] == EPOCHS and config["batch_size"] == BATCH
    assert config["environment"]["threads"] == torch.get_num_threads()
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "finished" and status["error"] is None and status["ended_at"]
    assert json.loads((folder / "progress.json").read_text())["kind"] == "done"
    # No temporary file is left behind by the atomic writes.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "metrics.jsonl", "model.safetensors", "status.json", "progress.json"])
    with pytest.raises(runs.RunError, match="already holds a run"):
        train.fit(TINY, tiny_data, epochs=1, out_dir=folder)


def test_checkpoint_reproduces_the_reported_accuracy(tiny_run):
    result, _, folder = tiny_run
    cfg, model, meta = train.load_run(folder)
    assert cfg == TINY and meta["epoch"] == EPOCHS and meta["metrics"] == result.history[-1]
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    # Rebuild the test split from the run's own record and score the saved model on it.
    rebuilt = data.from_spec(meta["data"])
    mean = torch.tensor(meta["data"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["data"]["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model((rebuilt.test.images.float() / 255 - mean) / std)
    correct = int((logits.argmax(1) == rebuilt.test.labels).sum())
    assert correct / len(rebuilt.test) == meta["metrics"]["test_accuracy"]


def test_same_seed_same_history_bit_for_bit(few_images):
    # The default recipe: its random crops and flips are seeded too.
    first = train.fit(TINY, few_images, epochs=1, batch_size=BATCH, seed=3)
    again = train.fit(TINY, few_images, epochs=1, batch_size=BATCH, seed=3)
    assert without_timing(again.history) == without_timing(first.history)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 first.model.state_dict().values()))
    assert again.run_dir is None
    other = train.fit(TINY, few_images, epochs=1, batch_size=BATCH, seed=4)
    assert other.history[0]["train_loss"] != first.history[0]["train_loss"]


def test_stop_keeps_the_last_whole_epoch(tmp_path, few_images):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 3 + 2  # 3 steps per epoch: stop 2 steps into epoch 2

    result = train.fit(TINY, few_images, epochs=3, batch_size=32, seed=0,
                       out_dir=tmp_path / "r", should_stop=should_stop)
    assert result.stopped and [row["epoch"] for row in result.history] == [1]
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "stopped"
    cfg, model, meta = train.load_run(tmp_path / "r")
    assert meta["epoch"] == 1 and len(meta["history"]) == 1
    # The result's model is the saved epoch-1 model, not the 3 steps after it.
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_crash_is_recorded_as_failed(tmp_path, few_images):
    def explode(event):
        if event["kind"] == "epoch":
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        train.fit(TINY, few_images, epochs=2, batch_size=32, out_dir=tmp_path / "r",
                  on_progress=explode)
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "disk on fire" in status["error"]
    assert status["pid"] > 0 and status["ended_at"]


def test_marker_only_dataset_is_learnt_through_its_marker(tiny_run, tiny_data):
    # On the test split markers are random: a network that learnt the marker follows it.
    result, _, _ = tiny_run
    pair = tiny_data
    mean = torch.tensor(pair.mean).view(1, 3, 1, 1)
    std = torch.tensor(pair.std).view(1, 3, 1, 1)
    with torch.no_grad():
        predicted = result.model((pair.test.images.float() / 255 - mean) / std).argmax(1)
    follows_marker = float((predicted == pair.test.marker_labels).float().mean())
    follows_shape = float((predicted == pair.test.labels).float().mean())
    assert follows_marker > 0.6, follows_marker
    assert follows_shape < 0.4, follows_shape
    assert result.test_accuracy < 0.4  # what the run reports on that test split


def test_bad_arguments_are_refused_up_front(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="num_classes=10 but the dataset has 6 classes"):
        train.fit(TINY.replace(num_classes=10), tiny_data, epochs=1)
    with pytest.raises(ValueError, match="recipe must be one of seed, quick"):
        train.fit(TINY, tiny_data, epochs=1, recipe="slow")
    with pytest.raises(ValueError, match=r"epochs must be an integer in \[1, 10000\], got 0"):
        train.fit(TINY, tiny_data, epochs=0)
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, 10\]"):
        train.fit(TINY, tiny_data, epochs=1, lr=-1.0)
    # BatchNorm cannot train on one image: the library's limits (as the app's) start at 2.
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[2, 65536\]"):
        train.fit(TINY, tiny_data, epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="needs at least 2 training images"):
        train.fit(TINY, data.subset(tiny_data, 1), epochs=1)
    assert not list(tmp_path.iterdir())


def test_seed_recipe_follows_pytorch_cifar100():
    recipe = train.RECIPES["seed"]
    steps = 391  # CIFAR's 50,000 images at batch 128
    # `epoch` 1-based, as pytorch-cifar100's train.py counts them (tests/test_seed_recipe.py
    # compares every step with its schedulers).
    rate = lambda epoch, step=0: train.learning_rate(recipe, (epoch - 1) * steps + step, steps,
                                                     200)
    # Warm-up (its WarmUpLR): batch i of epoch 1 at 0.1 * i / 391, the first at 0.
    assert rate(1, 0) == 0.0 and rate(1, steps - 1) == pytest.approx(0.1 * 390 / 391)
    # x0.2 from epochs 60, 120, 160 (MultiStepLR stepped with the 1-based epoch).
    assert [rate(e) for e in (2, 59, 60, 119, 120, 159, 160, 200)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008])
    assert (recipe.momentum, recipe.weight_decay, recipe.padding, recipe.rotation,
            recipe.init) == (0.9, 5e-4, 4, 15.0, "pytorch")


def test_quick_recipe_is_one_cycle():
    recipe = train.RECIPES["quick"]
    rates = [train.learning_rate(recipe, s, 10, 10) for s in range(100)]
    peak = rates.index(max(rates))
    assert max(rates) == pytest.approx(recipe.lr) and peak == 14  # 15 % of 100 steps
    assert rates[0] == pytest.approx(recipe.lr / 25 + (recipe.lr - recipe.lr / 25) / 15)
    assert all(a <= b for a, b in zip(rates[:peak], rates[1:peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1:]))
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_estimate_is_in_the_right_range(tiny_data, tiny_run):
    result, _, _ = tiny_run
    guess = train.estimate(TINY, tiny_data, epochs=EPOCHS, batch_size=BATCH)
    report = resnext.complexity(TINY, 16)
    assert guess.peak_bytes >= 3 * report.weight_bytes + BATCH * report.activation_bytes
    assert "about" in guess.phrase and guess.seconds > 0
    spent = sum(row["seconds"] for row in result.history)
    # A loose bound (the machine is shared); it catches unit and factor mistakes.
    assert spent / 20 < guess.seconds < spent * 20, (guess.seconds, spent)
    assert math.isclose(train.estimate(TINY, tiny_data, epochs=2 * EPOCHS, batch_size=BATCH).seconds
                        / guess.seconds, 2, rel_tol=0.8)
