"""A study worked in-process, and what it reports: every number checked against the run
folders themselves (metrics.jsonl, the saved model, evaluate run again), the intervals
against the t table; stopping, failing, the CSV, `show --json`'s contract and the search's
Pareto front."""

import csv
import io
import json
import math
import statistics

import pytest

import resnext
from resnext import ResNeXtConfig
from resnext.study import SearchSpec, StudySpec, data_spec, stats
from resnext.study.__main__ import main
from resnext.study.estimation import wall_seconds

TINY = ResNeXtConfig(cardinality=1, bottleneck_width=8, base_planes=8, stage_blocks=(1, 1, 1),
                     stem="cifar", num_classes=6)
DATA = data_spec("shapes", train_size=64, test_size=32, image_size=16)
T_975_1 = 12.7062  # the t table, df = 1 (two seeds)


def make(name, runs, **changes):
    values = dict(name=name, base=TINY, knob="cardinality", values=(1, 2), seeds=(0, 1),
                  data=DATA, epochs=1, batch_size=32, methods=("gradcam",), n_images=8)
    values.update(changes)
    spec = StudySpec(**values)
    resnext.study.create(spec, runs_dir=runs)
    return spec


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    runs = tmp_path_factory.mktemp("study") / "runs"
    make("grid", runs)
    done = resnext.study.work("grid", runs_dir=runs)
    assert done["outcomes"] == {"complete": 4}
    return runs, resnext.study.report("grid", runs_dir=runs)


def last_accuracy(run_dir):
    return resnext.train.read_metrics(run_dir)[-1]["test_accuracy"]


def test_each_point_is_its_runs_mean_with_a_t_interval(worked):
    runs, result = worked
    assert [p["value"] for p in result["points"]] == [1, 2]
    for point in result["points"]:
        assert point["n"] == 2 and sorted(point["seeds"]) == [0, 1]
        accuracies = [last_accuracy(runs / run_id) for run_id in point["runs"]]
        mean, sd = statistics.mean(accuracies), statistics.stdev(accuracies)
        assert point["accuracy"]["mean"] == pytest.approx(mean)
        half = T_975_1 * sd / math.sqrt(2)
        assert point["accuracy"]["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-4)
        for run_id in point["runs"]:
            config = json.loads((runs / run_id / "config.json").read_text())
            assert config["model"] == point["config"] and config["epochs"] == 1


def test_each_point_costs_what_its_built_network_counts(worked):
    runs, result = worked
    for point in result["points"]:
        _, model, _ = resnext.train.load_run(runs / point["runs"][0])
        assert point["params"] == sum(p.numel() for p in model.parameters())
        assert point["config"]["cardinality"] == point["value"]


def test_stored_metrics_are_those_of_the_runs_own_model(worked):
    from resnext.explain import evaluate

    runs, result = worked
    point = result["points"][1]
    energies = []
    for run_id in point["runs"]:
        _, model, meta = resnext.train.load_run(runs / run_id)
        data = resnext.data.from_spec(meta["data"])
        again = evaluate(model, data.test, ["gradcam"], 8, mean=data.mean, std=data.std)
        energies.append(again.rows[0]["energy"])
    assert point["metrics"]["gradcam"]["energy"]["mean"] == pytest.approx(
        statistics.mean(energies), abs=1e-5)
    assert set(point["metrics"]["gradcam"]) >= {"energy", "pointing", "deletion_auc",
                                                "insertion_auc"}


def test_steps_and_verdicts_follow_the_welch_rule(worked):
    runs, result = worked
    first, second = result["points"]
    samples = [[last_accuracy(runs / r) for r in p["runs"]] for p in (first, second)]
    step = next(s for s in result["steps"] if s["measure"] == "accuracy")
    expected = stats.difference(samples[1], samples[0])
    assert (step["from"], step["to"]) == (1, 2)
    assert step["ci95"] == pytest.approx(expected["ci95"])
    assert step["supported"] == (step["ci95"][0] > 0 or step["ci95"][1] < 0)
    best, other = (first, second) if first["accuracy"]["mean"] >= second["accuracy"]["mean"] \
        else (second, first)
    assert best["vs_best"]["accuracy"] is None
    assert other["vs_best"]["accuracy"]["best"] == best["value"]
    pooled = stats.pooled_sd(samples)
    assert result["seeds_needed"] == {"delta": 0.02, "sd": pytest.approx(pooled),
                                      "n": stats.seeds_needed(pooled)}


def test_csv_and_text_carry_the_points(worked):
    _, result = worked
    rows = list(csv.DictReader(io.StringIO(resnext.study.to_csv(result))))
    assert [row["value"] for row in rows] == ["1", "2"]
    for row, point in zip(rows, result["points"]):
        assert float(row["accuracy"]) == pytest.approx(point["accuracy"]["mean"], rel=1e-5)
        assert float(row["accuracy_low"]) == pytest.approx(point["accuracy"]["ci95"][0], rel=1e-5)
        assert row["gradcam.energy"] and row["runs"].split() == point["runs"]
        assert row["accuracy_vs_best"] in {"best", "worse (supported)", "gap unsupported"}
    text = resnext.study.to_text(result)
    assert "4 COMPLETE" in text and "ResNeXt-11 (2x8d, 8 base planes)" in text


def test_show_json_keeps_its_contract(worked, capsys):
    runs, _ = worked
    assert main(["show", "grid", "--runs-dir", str(runs), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    point = shown["points"][0]
    assert {"value", "config", "macs", "params", "n", "accuracy", "metrics", "runs"} <= set(point)
    assert set(point["accuracy"]) >= {"mean", "ci95"} and len(point["accuracy"]["ci95"]) == 2
    assert set(point["metrics"]["gradcam"]["energy"]) >= {"mean", "ci95"}
    for trial in shown["trials"]:
        assert trial["state"] == "COMPLETE" and set(trial["params"]) == {"value", "seed"}
        assert trial["run_id"] in point["runs"] + shown["points"][1]["runs"]


def test_a_stopped_worker_queues_its_trial_again_at_once(tmp_path):
    runs = tmp_path / "runs"
    make("stop", runs, values=(2,), seeds=(3,))
    stop = {"now": False}
    done = resnext.study.work("stop", runs_dir=runs, should_stop=lambda: stop["now"],
                              on_event=lambda event: stop.update(now=event["kind"] == "start"))
    assert done["outcomes"] == {"stopped": 1}
    trials = resnext.study.report("stop", runs_dir=runs)["trials"]
    assert [t["state"] for t in trials] == ["FAIL", "WAITING"]
    assert trials[0]["error"] == "the worker was stopped" and trials[0]["run_id"]
    assert trials[1]["retry_of"] == 0 and trials[1]["run_id"] is None  # a fresh attempt
    assert trials[1]["params"] == {"value": 2, "seed": 3}
    assert resnext.study.work("stop", runs_dir=runs)["outcomes"] == {"complete": 1}
    point = resnext.study.report("stop", runs_dir=runs)["points"][0]
    assert point["n"] == 1 and point["accuracy"]["ci95"] is None  # one seed: no interval


def test_a_failing_trial_is_failed_with_its_message_and_exit_1(tmp_path, capsys):
    runs = tmp_path / "runs"
    make("broken", runs, values=(2,), seeds=(0,))
    assert main(["work", "broken", "--runs-dir", str(runs), "--device", "nodevice"]) == 1
    assert "trial 0 failed: RuntimeError" in capsys.readouterr().out
    trial = resnext.study.report("broken", runs_dir=runs)["trials"][0]
    assert trial["state"] == "FAIL" and "nodevice" in trial["error"]


def test_search_trains_within_the_budget_and_reports_its_pareto_front(tmp_path):
    runs = tmp_path / "runs"
    budget = resnext.complexity(TINY.replace(cardinality=2, bottleneck_width=16), 16).macs
    search = SearchSpec(budget_macs=budget, trials=4, cardinalities=(1, 2, 4),
                        blocks=("1,1,1", "2,1,1"), objective="gradcam:energy", population=2)
    make("front", runs, search=search, seeds=(0,))
    assert resnext.study.work("front", runs_dir=runs)["trials"] == [0, 1, 2, 3]
    result = resnext.study.report("front", runs_dir=runs)
    finished = [t for t in result["trials"] if t["state"] == "COMPLETE"]
    assert finished and all(t["state"] in {"COMPLETE", "PRUNED"} for t in result["trials"])
    for point in result["points"]:
        assert point["macs"] <= budget
    scores = {p["trial"]: (p["accuracy"]["mean"], p["metrics"]["gradcam"]["energy"]["mean"])
              for p in result["points"]}

    def dominated(a):
        return any(b != a and b[0] >= a[0] and b[1] >= a[1] for b in scores.values())

    front = {p["trial"] for p in result["pareto"]}
    assert front == {n for n, score in scores.items() if not dominated(score)}


def test_wall_time_deals_the_longest_trials_first():
    assert wall_seconds([5, 4, 3, 3, 3], 2) == 10  # 5+3 | 4+3+3
    assert wall_seconds([5, 4, 3, 3, 3], 1) == 18
    assert wall_seconds([2, 2], 8) == 2


def test_estimate_counts_every_trial(tmp_path):
    spec = StudySpec(name="guess", base=TINY, knob="cardinality", values=(1, 2), seeds=(0, 1, 2),
                     data=DATA, epochs=1, batch_size=32, methods=("gradcam",), n_images=8)
    guess = resnext.study.estimate(spec, workers=2)
    assert guess["trials"] == 6 and [p["trials"] for p in guess["points"]] == [3, 3]
    assert all(p["train_seconds"] > 0 and p["score_seconds"] > 0 for p in guess["points"])
    assert guess["total_seconds"] == pytest.approx(
        sum(3 * p["trial_seconds"] for p in guess["points"]))
    assert guess["total_seconds"] / 2 <= guess["wall_seconds"] <= guess["total_seconds"]


def test_a_trial_taken_by_a_worker_that_died_before_its_first_beat_is_retried(tmp_path):
    """The take itself writes the first heartbeat: a worker gone right after taking a trial
    (before its heartbeat thread ran) leaves a trial that goes stale, not one running for
    ever that every other worker would wait on."""
    import time

    import optuna

    from resnext.study import storage as stores

    runs = tmp_path / "runs"
    make("gone", runs, values=(2,), seeds=(0,), heartbeat=1, grace=2)
    database = stores.open_storage(None, runs)
    cached = optuna.storages.get_storage(database)
    assert stores.take_waiting(cached, cached.get_study_id_from_name("gone"), heartbeat=True)
    deadline = time.monotonic() + 120  # without the first beat this worker would wait for ever
    done = resnext.study.work("gone", runs_dir=runs,
                              should_stop=lambda: time.monotonic() > deadline)
    assert done["outcomes"] == {"complete": 1}
    states = [t["state"] for t in resnext.study.report("gone", runs_dir=runs)["trials"]]
    assert states == ["FAIL", "COMPLETE"]


def test_studies_lists_what_the_storage_holds(worked, capsys):
    runs, _ = worked
    listed = resnext.study.studies(runs_dir=runs)
    assert [s["name"] for s in listed] == ["grid"]
    assert listed[0]["mode"] == "grid" and listed[0]["trials"] == 4
    assert listed[0]["counts"]["COMPLETE"] == 4
    assert main(["list", "--runs-dir", str(runs)]) == 0
    assert "grid  grid  4 trials: 4 COMPLETE" in capsys.readouterr().out
