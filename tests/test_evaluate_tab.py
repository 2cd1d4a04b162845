"""The Evaluate tab's services and handlers on a tiny run trained here: which runs can be
evaluated, the tab's table against `evaluate` run on the run loaded independently, the CSV,
best/worst images, the sanity check, compare (same dataset only), stop, and the
/evaluate and /sanity_check endpoints of the session app."""

import csv
import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

import resnext
import resnext.data
import resnext.train
from explorer.context import AppOptions, TabContext
from resnext.explain import evaluation as ev
from explorer.evaluate import runs as service
from explorer.train.jobs import TrainingManager
from explorer.evaluate import figures, tab

TINY = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,
                             stage_blocks=(1, 1), stem="cifar", num_classes=6)
METHODS = ["saliency", "gradcam", "random"]
N_IMAGES = 16
_TRAINED: dict[str, Path] = {}


def tiny_run(folder: Path) -> Path:
    """A one-epoch run on 16-px shapes at `folder`: trained once per test process, copied
    after that (the copy is the same run: same weights, same dataset spec)."""
    if "run" not in _TRAINED:
        import tempfile

        first = Path(tempfile.mkdtemp(prefix="eval-tiny-")) / "run"
        resnext.train.fit(TINY, resnext.data.shapes(n_train=256, n_test=64, image_size=16),
                          epochs=1, batch_size=64, out_dir=first)
        _TRAINED["run"] = first
    shutil.copytree(_TRAINED["run"], folder)
    return folder


def edit_config(folder: Path, **data_changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["data"].update(data_changes)
    (folder / "config.json").write_text(json.dumps(config))


def reference(folder: Path, methods=METHODS, n_images=N_IMAGES, target="label"):
    """`evaluate` on the run as the library loads it, without the tab's glue."""
    _, model, meta = resnext.train.load_run(folder)
    data = resnext.data.from_spec(meta["data"])
    return ev.evaluate(model, data.test, methods, n_images, mean=data.mean, std=data.std,
                       target=target)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-runs")
    tiny_run(root / "a-shapes")
    tiny_run(root / "b-same")  # the same run under another name
    edit_config(tiny_run(root / "c-cifar"), name="cifar10")  # a dataset without masks
    edit_config(tiny_run(root / "d-32px"), image_size=32)  # same network, 32-px shapes
    (root / "e-empty").mkdir()
    return root


@pytest.fixture(scope="module")
def ctx(runs_dir):
    options = AppOptions(runs_dir=runs_dir, data_dir=runs_dir / "data")
    return TabContext(options=options, demo=None, selection=None, weights=None,
                      training=TrainingManager(runs_dir, runs_dir / "data"))


@pytest.fixture(scope="module")
def evaluation(runs_dir):
    return service.run_evaluation(runs_dir, "a-shapes", METHODS, N_IMAGES, "label")


def test_only_finished_runs_on_masked_datasets_are_offered(ctx, runs_dir):
    assert service.evaluable_runs(ctx.training) == ["d-32px", "b-same", "a-shapes"]
    with pytest.raises(ValueError, match="c-cifar was trained on cifar10, whose test images "
                                         "have no object masks"):
        service.run_evaluation(runs_dir, "c-cifar", METHODS, 4, "label")
    for bad, message in [("e-empty", "no run 'e-empty'"), ("../a-shapes", "not a run id"),
                         ("", "choose a trained run first"), (None, "choose a trained run")]:
        with pytest.raises(ValueError, match=message):
            service.run_folder(runs_dir, bad)


def test_the_tabs_table_is_evaluate_on_the_run(ctx, runs_dir):
    handlers = tab.make_handlers(ctx)
    outputs = handlers["evaluate"]("a-shapes", METHODS, float(N_IMAGES), "label",
                                   request=None, progress=None)
    summary, table = outputs["summary"], outputs["table"]
    expected = reference(runs_dir / "a-shapes")
    metrics = ["energy", "pointing", "deletion_auc", "insertion_auc"]  # no marker on shapes
    assert table["headers"][1:5] == [ev.METRIC_LABELS[m] for m in metrics]
    assert [row[0] for row in table["data"]] == [ev.ROW_LABELS[m] for m in METHODS] + [
        service.REFERENCE_ROW]
    for row, want in zip(table["data"], expected.rows):
        assert row[1:5] == [round(want[m], 3) for m in metrics]
    random_row = table["data"][-1]
    assert random_row[1] == round(float(expected.mask_share.mean()), 3)  # energy's reference
    assert random_row[3] == round(expected.rows[2]["deletion_auc"], 3)  # the random-map run
    assert f"Evaluated {N_IMAGES} test images" in summary
    assert f"accuracy on them {expected.accuracy:.1%}" in summary
    # Charts: one per metric, the random line where there is one; marker share hidden.
    energy_plot = outputs["plot_energy"]["value"]
    assert list(energy_plot.data[0].x) == ["Saliency", "Grad-CAM"]
    assert energy_plot.layout.shapes[0].y0 == pytest.approx(expected.random_line("energy"))
    assert outputs["plot_marker_share"]["visible"] is False
    assert [value for _, value in outputs["examples_method"]["choices"]] == METHODS
    assert outputs["state"].run == "a-shapes"  # the session keeps the evaluation


def test_csv_has_a_row_per_method_and_the_reference(evaluation):
    path = service.csv_download(evaluation)
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert [r["method"] for r in rows] == METHODS + ["reference"]
    assert all(r["n_images"] == str(N_IMAGES) for r in rows)
    assert float(rows[0]["energy"]) == pytest.approx(evaluation.result.rows[0]["energy"], rel=1e-5)


def test_best_and_worst_images_follow_the_metric(evaluation):
    best, worst = service.examples(evaluation, "gradcam", "energy", 3)
    energy = evaluation.result.scores("gradcam").energy
    order = np.argsort(-energy, kind="stable")
    assert [float(caption.split(" · ")[0]) for _, caption in best] == pytest.approx(
        np.round(energy[order[:3]], 3), abs=1e-3)
    assert [float(caption.split(" · ")[0]) for _, caption in worst] == pytest.approx(
        np.round(energy[order[::-1][:3]], 3), abs=1e-3)
    image, caption = best[0]
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    label = evaluation.classes[int(evaluation.result.labels[order[0]])]
    assert caption.split(" · ")[1].startswith(label)
    assert (image == service.OBJECT_COLOUR).all(axis=-1).any()  # the object is outlined
    # A clicked table row picks its method; the reference row picks none.
    assert service.method_of_row(evaluation, 1) == "gradcam"
    assert service.method_of_row(evaluation, 3) is None
    with pytest.raises(ValueError, match=r"Images each \(best / worst\) must be an integer in \[1, 12\]"):
        service.examples(evaluation, "gradcam", "energy", 0)
    with pytest.raises(ValueError, match="Metric: choose one of"):
        service.examples(evaluation, "gradcam", "marker_share", 2)


def test_compare_needs_two_runs_of_one_dataset(runs_dir, evaluation):
    comparison = service.compare_runs(runs_dir, ["a-shapes", "b-same"], METHODS, N_IMAGES,
                                      "label", reuse=[evaluation])
    first, second = comparison.evaluations
    assert first is evaluation  # the session's own evaluation, same request: reused
    # The copy has the same weights and test images: the same numbers, side by side.
    assert [r["energy"] for r in second.result.rows] == pytest.approx(
        [r["energy"] for r in first.result.rows])
    rows = comparison.rows()
    assert [row[:2] for row in rows[:2]] == [["Saliency", "a-shapes"], ["Saliency", "b-same"]]
    assert len(rows) == 2 * len(METHODS)
    with pytest.raises(ValueError, match="must be trained on the same dataset"):
        service.compare_runs(runs_dir, ["a-shapes", "d-32px"], METHODS, 4, "label")
    with pytest.raises(ValueError, match="choose two or more runs"):
        service.compare_runs(runs_dir, ["a-shapes"], METHODS, 4, "label")


def test_stop_returns_what_is_finished_and_sanity_curves_start_at_one(runs_dir):
    stopped = threading.Event()
    stopped.set()
    result = service.run_evaluation(runs_dir, "a-shapes", METHODS, 4, "label",
                                    should_stop=stopped.is_set).result
    assert not result.complete and result.methods == []
    sanity = service.run_sanity(runs_dir, "a-shapes", ["saliency", "random"], 4)
    _, model, meta = resnext.train.load_run(runs_dir / "a-shapes")
    data = resnext.data.from_spec(meta["data"])
    direct = ev.sanity_check(model, data.test, ["saliency"], 4, mean=data.mean, std=data.std)
    assert sanity.steps == ["trained", "fc", "layer2", "layer1", "stem"] == direct.steps
    assert sanity.curves == direct.curves and sanity.curves["saliency"]["spearman"][0] == 1.0


def test_api_evaluate_and_sanity_check(client, app_dirs):
    folder = tiny_run(app_dirs[0] / "eval-api-run")
    payload = client.predict("eval-api-run", ["saliency", "gradcam"], 8, "predicted",
                             api_name="/evaluate")
    expected = reference(folder, ["saliency", "gradcam"], 8, "predicted")
    assert payload["run_id"] == "eval-api-run" and payload["n_images"] == 8
    for row, want in zip(payload["rows"], expected.rows):
        assert row["method"] == want["method"]
        for metric in ("energy", "pointing", "deletion_auc", "insertion_auc"):
            assert row[metric] == pytest.approx(want[metric], abs=2e-6)
    assert payload["random"]["energy"] == pytest.approx(expected.random_line("energy"), abs=2e-6)
    curves = client.predict("eval-api-run", "saliency", 4, api_name="/sanity_check")
    assert curves["steps"][0] == "trained" and curves["curves"]["saliency"]["spearman"][0] == 1.0
    edit_config(tiny_run(app_dirs[0] / "eval-api-cifar"), name="cifar10")
    with pytest.raises(Exception, match="trained on cifar10, whose test images have no object"):
        client.predict("eval-api-cifar", ["saliency"], 8, "label", api_name="/evaluate")
    with pytest.raises(Exception, match=r"Test images must be an integer in \[1, 1000\]"):
        client.predict("eval-api-run", ["saliency"], 0, "label", api_name="/evaluate")


def test_stop_drops_an_evaluation_still_waiting_and_not_a_later_one(ctx, runs_dir):
    """Stop pressed while Evaluate waited in the queue: its turn comes and it ends at once,
    leaving the page as it was; an Evaluate pressed after the Stop runs."""
    handlers = tab.make_handlers(ctx)
    page = SimpleNamespace(session_hash="page-1")
    handlers["stop"](2_000.0, request=page)
    dropped = handlers["evaluate"]("a-shapes", METHODS, float(N_IMAGES), "label", 1_000.0,
                                   request=page, progress=None)
    assert dropped == gr.skip()
    assert handlers["sanity"]("a-shapes", METHODS, float(N_IMAGES), "spearman", 1_500.0,
                              request=page, progress=None) == gr.skip()
    assert handlers["compare"](["a-shapes"], METHODS, float(N_IMAGES), "label", "energy", None,
                               1_500.0, request=page, progress=None) == gr.skip()
    later = handlers["evaluate"]("a-shapes", METHODS, float(N_IMAGES), "label", 3_000.0,
                                 request=page, progress=None)
    assert f"Evaluated {N_IMAGES} test images" in later["summary"]
    other_page = handlers["evaluate"]("a-shapes", METHODS, float(N_IMAGES), "label", 1_000.0,
                                      request=SimpleNamespace(session_hash="page-2"),
                                      progress=None)
    assert f"Evaluated {N_IMAGES} test images" in other_page["summary"]


def test_figures_show_methods_and_the_random_line():
    from tests.test_explain_batch import RegionNet
    from tests.test_explain_evaluation import FAST, MEAN, STD, MaskedSplit

    result = ev.evaluate(RegionNet(), MaskedSplit(4), ["saliency", "gradcam"], n_images=4,
                         mean=MEAN, std=STD, settings=FAST, steps=2)
    fig = figures.metric_figure(result, "energy")
    assert list(fig.data[0].x) == ["Saliency", "Grad-CAM"]
    assert list(fig.data[0].y) == pytest.approx([r["energy"] for r in result.rows])
    assert fig.layout.shapes[0].y0 == pytest.approx(result.random_line("energy"))
    assert not figures.metric_figure(result, "insertion_auc").layout.shapes  # no random row run
    compare = figures.compare_figure({"run A": result, "run B": result}, "pointing")
    assert [t.name.split(" (")[0] for t in compare.data] == ["run A", "run B"]
    sanity = ev.SanityResult(steps=["trained", "fc"], curves={"saliency": {
        "spearman": [1.0, 0.2], "ssim": [1.0, 0.3], "topk": [1.0, float("nan")]}},
        labels={"saliency": "Saliency"})
    fig = figures.sanity_figure(sanity, "topk")
    assert list(fig.data[0].x) == ["trained", "fc"] and list(fig.data[0].y) == [1.0, None]
    with pytest.raises(ValueError, match="metric"):
        figures.metric_figure(result, "accuracy")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resnext.explain", *args], capture_output=True,
                          text=True, timeout=600, cwd=Path(__file__).resolve().parent.parent)


def test_the_cli_prints_what_the_endpoint_returns(client, app_dirs, tmp_path):
    """`python -m resnext.explain RUN --json` and /evaluate: the same JSON (but the seconds
    each took), run id and dataset included; --csv writes the tab's CSV; a progress bar on
    stderr."""
    folder = tiny_run(app_dirs[0] / "eval-cli-run")
    payload = client.predict("eval-cli-run", ["saliency", "gradcam"], 8, "label",
                             api_name="/evaluate")
    done = run_cli(str(folder), "--methods", "saliency,gradcam", "--images", "8", "--target",
                   "label", "--json", "--csv", str(tmp_path / "table.csv"))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed.pop("seconds") > 0 and payload.pop("seconds") > 0
    for row in printed["rows"] + payload["rows"]:
        row.pop("seconds")
    assert printed == payload
    assert printed["run_id"] == "eval-cli-run" and printed["dataset"] == "shapes"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table.csv").read_text())))
    assert [r["method"] for r in rows] == ["saliency", "gradcam", "reference"]
    assert "%|" in done.stderr  # tqdm's bar
    text = run_cli(str(folder), "--methods", "saliency", "--images", "4")
    assert text.returncode == 0 and "4 test images of eval-cli-run (shapes)" in text.stdout
    assert "Saliency" in text.stdout and "random map (reference)" in text.stdout


@pytest.mark.parametrize("args,message", [
    (["{missing}"], "RUN_DIR: no such folder"),
    (["{folder}"], "folder-run was trained on folder, whose test split has no object masks"),
    (["{run}", "--methods", "saliency,lime"], "--methods: unknown 'lime'; choose from saliency,"),
    (["{run}", "--images", "0"], r"--images must be a whole number in \[1, 100000\], got 0"),
    (["{run}", "--target", "everything"], "--target must be one of label, predicted"),
])
def test_the_cli_refuses_in_one_line(runs_dir, tmp_path, args, message):
    import re

    from PIL import Image

    for label in ("cat", "dog"):  # a folder dataset: images without object masks
        (tmp_path / "photos" / label).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (16, 16), (40 * index, 0, 0)).save(
                tmp_path / "photos" / label / f"{index}.png")
    edit_config(tiny_run(tmp_path / "folder-run"), name="folder", root=str(tmp_path / "photos"))
    paths = {"missing": tmp_path / "nowhere", "folder": tmp_path / "folder-run",
             "run": runs_dir / "a-shapes"}
    done = run_cli(*[a.format(**paths) for a in args])
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert re.search(message, done.stderr), done.stderr
