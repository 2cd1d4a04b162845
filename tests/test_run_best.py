"""A run's best epoch beside its last: resnext.train.runs and the app's runs table."""

import json

from resnext import ResNeXtConfig
from resnext.train import runs

TINY = ResNeXtConfig(cardinality=4, bottleneck_width=16, base_planes=16, stage_blocks=(1, 1),
                     stem="cifar", num_classes=6)


def history_of(accuracies):
    return [{"epoch": i + 1, "test_accuracy": a, "seconds": 1.0}
            for i, a in enumerate(accuracies)]


def config_of(recipe, epochs):
    milestones = [0.3, 0.6, 0.8] if recipe == "seed" else []
    return {"model": TINY.to_dict(), "data": {"name": "cifar100"}, "epochs": epochs,
            "recipe": {"name": recipe, "milestones": milestones},
            "environment": {"device": "cpu"}}


def test_best_epoch_is_the_first_of_the_highest():
    history = history_of([0.2, 0.5, 0.4, 0.5, 0.3])
    assert runs.best_epoch(history)["epoch"] == 2  # ties: the earliest, as train.py's `<`
    assert runs.best_epoch(history, after=2)["epoch"] == 4
    assert runs.best_epoch(history, after=5) is None and runs.best_epoch([]) is None
    assert runs.best_epoch(history_of([float("nan"), 0.1]))["epoch"] == 2  # a rank > 0 NaN


def test_seed_runs_count_their_best_after_the_second_milestone():
    # pytorch-cifar100: `epoch > settings.MILESTONES[1]`, 120 of 200.
    assert runs.best_after(config_of("seed", 200)) == 120
    assert runs.best_after(config_of("seed", 10)) == 6
    assert runs.best_after(config_of("quick", 200)) == 0
    assert runs.best_after({}) == 0


def write_run(folder, recipe, accuracies, epochs):
    folder.mkdir(parents=True)
    (folder / runs.CONFIG_FILE).write_text(json.dumps(config_of(recipe, epochs)))
    runs.write_metrics(folder, history_of(accuracies))
    (folder / runs.STATUS_FILE).write_text(json.dumps(dict(runs.status_record(
        "finished", "2026-01-01T00:00:00Z", epochs, "cpu", ended=True, pid=None))))


def test_runs_table_says_which_accuracy_is_the_last_and_which_the_best(tmp_path):
    from explorer.train.jobs import RUN_COLUMNS, run_row
    from resnext.train.runs import read_run

    # 10 epochs of the seed recipe: the best counts after epoch 6, as its train.py would.
    write_run(tmp_path / "seed", "seed", [0.1, 0.9, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.72, 0.7], 10)
    record = read_run(tmp_path / "seed")
    assert (record.test_accuracy, record.best_accuracy, record.best_epoch, record.best_after) == (
        0.7, 0.75, 8, 6)
    row = dict(zip(RUN_COLUMNS, run_row(record)))
    assert row["test accuracy (last epoch)"] == "70.0 %"
    assert row["best test accuracy"] == "75.0 % (epoch 8)"
    assert record.to_dict()["best_epoch"] == 8  # what /runs and /train_status return

    write_run(tmp_path / "quick", "quick", [0.1, 0.9, 0.3], 3)
    record = read_run(tmp_path / "quick")
    assert (record.best_accuracy, record.best_epoch, record.best_after) == (0.9, 2, 0)
    assert dict(zip(RUN_COLUMNS, run_row(record)))["best test accuracy"] == "90.0 % (epoch 2)"

    write_run(tmp_path / "early", "seed", [0.1, 0.2], 200)  # still before epoch 121
    row = dict(zip(RUN_COLUMNS, run_row(read_run(tmp_path / "early"))))
    assert row["best test accuracy"] == "– (counted after epoch 120)"
    assert row["test accuracy (last epoch)"] == "20.0 %"
    assert len(RUN_COLUMNS) == len(run_row(read_run(tmp_path / "early")))
