"""The Study tab's services with real worker processes on a tiny study: what the page shows
(trial table, points, charts, CSV) against `resnext.study.report`'s own JSON, Table 2 for the
network in hand, the estimate, refusals by name, the owner rule, and re-attaching to the
workers from a new server object on the same runs directory."""

import re
import time

import gradio as gr
import pytest

import resnext
import resnext.study
from explorer.context import AppOptions, TabContext
from explorer.selection import Selection
from explorer.study import requests as service
from explorer.study import views
from explorer.study.tab import make_api
from explorer.study.workers import StudyWorkers
from resnext.train.runs import RunAccessError

TINY = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,
                             stage_blocks=(1, 1, 1), stem="cifar", num_classes=6)
SELECTION = Selection(TINY, 16)
CONTROLS = dict(knob="cardinality", values="1,2", keep_complexity=False, seeds="0,1",
                data="shapes", image_size=16, train_size=64, test_size=32, epochs=1,
                batch_size=32, methods=["gradcam"], n_images=8)
OWNER, ADMIN = "alice", "root"


def spec(name, data_dir, **changes):
    return service.make_spec(name, SELECTION, **{**CONTROLS, **changes}, data_dir=data_dir)


def wait_until(check, seconds, what, workers=None, name=None):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.5)
    tail = workers.log_tail(name, 20) if workers else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A 2 values x 2 seeds study created by alice and worked by one real worker process."""
    runs = tmp_path_factory.mktemp("study-tab") / "runs"
    workers = StudyWorkers(runs, None, admins={ADMIN})
    made = workers.create(spec("tiny", runs.parent), ["cpu"], OWNER)
    assert made["trials"] == 4 and [w["device"] for w in made["workers"]] == ["cpu"]

    def done():
        result = workers.report("tiny")
        return result["done"] and not any(w["alive"] for w in result["workers"])

    wait_until(done, 300, "the tiny study to finish", workers, "tiny")
    return runs, workers, made["workers"][0]["pid"]


def test_every_trial_completes_and_the_table_shows_the_reports_numbers(finished):
    runs, workers, _ = finished
    truth = resnext.study.report("tiny", runs_dir=runs)  # the library's own JSON
    assert truth["counts"]["COMPLETE"] == 4 and truth["owner"] == OWNER
    rows = views.trial_rows(workers.report("tiny"))
    assert [row[0] for row in rows] == [t["number"] for t in truth["trials"]]
    for row, trial in zip(rows, truth["trials"]):
        assert row[1] == "COMPLETE"
        assert row[2] == f"value={trial['params']['value']} seed={trial['params']['seed']}"
        assert row[3] == f"{100 * trial['accuracy']:.1f} %"
        assert row[6] == trial["run_id"] and (runs / trial["run_id"] / "config.json").exists()


def test_points_and_charts_carry_the_reports_means_and_intervals(finished):
    runs, workers, _ = finished
    truth = resnext.study.report("tiny", runs_dir=runs)
    shown = workers.report("tiny")
    points = truth["points"]
    rows = views.point_rows(shown)
    for row, point in zip(rows, points):
        mean, (low, high) = point["accuracy"]["mean"], point["accuracy"]["ci95"]
        assert row[0] == str(point["value"]) and row[4] == 2
        assert row[5] == f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
        assert row[6] == ("best" if point is max(points, key=lambda p: p["accuracy"]["mean"])
                          else ("worse (supported)" if point["vs_best"]["accuracy"]["supported"]
                                else "gap unsupported"))
    trace = views.accuracy_figure(shown).data[0]
    assert list(trace.x) == ["1", "2"]
    assert list(trace.y) == pytest.approx([100 * p["accuracy"]["mean"] for p in points])
    assert list(trace.error_y.array) == pytest.approx(
        [100 * (p["accuracy"]["ci95"][1] - p["accuracy"]["mean"]) for p in points])
    assert list(trace.error_y.arrayminus) == pytest.approx(
        [100 * (p["accuracy"]["mean"] - p["accuracy"]["ci95"][0]) for p in points])
    macs = views.macs_figure(shown).data[0]
    assert list(macs.x) == [resnext.complexity(TINY.replace(cardinality=c), 16).macs
                            for c in (1, 2)]


def test_each_metric_of_each_method_is_charted_with_its_interval(finished):
    runs, workers, _ = finished
    points = resnext.study.report("tiny", runs_dir=runs)["points"]
    metrics = sorted(points[0]["metrics"]["gradcam"])
    assert "energy" in metrics and "pointing" in metrics
    figure = views.metrics_figure(workers.report("tiny"))
    assert len(figure.data) == len(metrics)  # one method: one trace per metric panel
    for trace, metric in zip(figure.data, metrics):
        summaries = [p["metrics"]["gradcam"][metric] for p in points]
        assert list(trace.y) == pytest.approx([s["mean"] for s in summaries])
        assert list(trace.error_y.array) == pytest.approx(
            [s["ci95"][1] - s["mean"] for s in summaries])
        assert trace.customdata[0].split() == points[0]["runs"]  # a marker links to its runs


def test_status_endpoint_is_show_json_plus_workers_and_csv(finished):
    runs, workers, _ = finished
    api = make_api(TabContext(options=AppOptions(runs_dir=runs), demo=None, selection=None,
                              weights=None), workers)
    status = api["study_status"]("tiny")
    truth = resnext.study.report("tiny", runs_dir=runs)
    assert status["points"] == truth["points"] and status["counts"] == truth["counts"]
    assert status["csv"] == resnext.study.to_csv(truth)
    assert status["csv"].splitlines()[0].startswith("value,network,macs,params,n,accuracy")
    assert [s["name"] for s in api["studies"]()] == ["tiny"]
    runs_of_point = views.point_runs(status, 1)
    assert runs_of_point == truth["points"][1]["runs"] and len(runs_of_point) == 2


def test_another_user_is_refused_and_nothing_changes(finished):
    runs, workers, pid = finished
    before = workers.workers("tiny")
    with pytest.raises(RunAccessError, match="study tiny belongs to alice: only its owner "
                                             "or an admin can stop it"):
        workers.stop("tiny", "bob")
    with pytest.raises(RunAccessError, match="belongs to alice"):
        workers.start("tiny", ["cpu"], "bob")
    assert workers.workers("tiny") == before
    assert "no worker running" in workers.stop("tiny", ADMIN)  # an admin may; none runs


def test_a_new_server_object_reattaches_to_the_same_workers(finished):
    runs, _, pid = finished
    again = StudyWorkers(runs, None, admins={ADMIN})
    assert [w["pid"] for w in again.workers("tiny")] == [pid]
    assert [(s["name"], s["owner"], s["counts"]["COMPLETE"]) for s in again.studies()] == [
        ("tiny", OWNER, 4)]
    assert again.report("tiny")["trials"] == resnext.study.report("tiny", runs_dir=runs)["trials"]


def test_stop_ends_a_running_worker_and_queues_its_trial_again(tmp_path):
    runs = tmp_path / "runs"
    workers = StudyWorkers(runs, None, admins={ADMIN})
    workers.create(spec("long", tmp_path, values="1", seeds="0", epochs=500), ["cpu"], OWNER)
    wait_until(lambda: workers.report("long")["counts"]["RUNNING"] == 1, 120,
               "the trial to start", workers, "long")
    # After a restart, a new object finds the worker on disk and may stop it.
    restarted = StudyWorkers(runs, None, admins={ADMIN})
    assert "Stopping 1 worker(s) of study long (cpu)" in restarted.stop("long", OWNER)
    wait_until(lambda: not any(w["alive"] for w in restarted.workers("long")), 60,
               "the worker to end", workers, "long")
    counts = workers.report("long")["counts"]
    assert counts["RUNNING"] == 0 and counts["WAITING"] == 1  # queued again, not lost


def test_table2_keeps_the_cardinalities_whose_cost_can_be_kept():
    values, note = service.table2(Selection(resnext.PRESETS["resnext50_32x4d"], 224),
                                  "shapes", 32)
    assert values == "1,2,4,8,32" and "Left out" not in note
    values, note = service.table2(SELECTION, "shapes", 16)
    base = resnext.complexity(TINY, 16).params
    # Independent: at base_planes 8 the narrowest path is d = 8 (64 / 8); a C whose network
    # with d = 8 already has more parameters than the base cannot keep its cost.
    kept = [c for c in service.TABLE2_CARDINALITIES
            if resnext.complexity(TINY.replace(cardinality=c, bottleneck_width=8), 16).params
            <= base]
    assert values == ",".join(map(str, kept)) == "1,2,4"
    assert "C = 8 (even its narrowest path, d = 8" in note and "C = 32" in note


def test_the_estimate_counts_every_trial(tmp_path):
    found = service.estimate(spec("e", tmp_path), ["cpu"])
    assert found["trials"] == 4 and found["workers"] == 1
    assert found["wall_seconds"] == pytest.approx(found["total_seconds"])
    assert found["text"].startswith("**Estimate:** 4 trials × about")


@pytest.mark.parametrize("changes, message", [
    (dict(values="0,2"), "--values: cardinality = 0 gives no valid network"),
    (dict(methods=["gradcam", "magic"]), "--methods: unknown method(s) magic"),
    (dict(seeds="0,x"), "seeds must be whole numbers separated by commas"),
    (dict(data="imagenet"), "unknown dataset 'imagenet'"),
    (dict(epochs=0), "epochs must be an integer in [1, 10000], got 0"),
])
def test_bad_input_gets_the_librarys_message_by_name(tmp_path, changes, message):
    api = make_api(TabContext(options=AppOptions(runs_dir=tmp_path), demo=None,
                              selection=None, weights=None), StudyWorkers(tmp_path))
    controls = {**CONTROLS, **changes}
    with pytest.raises(gr.Error, match=re.escape(message)):
        api["study_estimate"](SELECTION.to_json(), *controls.values(), ["cpu"])
