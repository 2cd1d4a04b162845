"""`evaluate` end to end: a table whose numbers come from the metrics, CSV and JSON that
say the same, progress and stop, best/worst lookups, the shapes dataset."""

import csv
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from resnext.explain import evaluation as ev
from tests.test_explain_batch import LEFT, SIDE, SIZE, TOP, RegionNet

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class MaskedSplit(torch.utils.data.Dataset):
    """A test split like resnext.data's: items (image in [0, 1], label), `.masks`."""

    def __init__(self, n, markers=True, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, SIDE, SIDE, generator=generator)
        self.labels = torch.arange(n) % 3
        self.masks = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
        self.masks[:, TOP:TOP + SIZE, LEFT:LEFT + SIZE] = True  # what RegionNet reads
        self.marker_masks = None
        if markers:
            self.marker_masks = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
            self.marker_masks[:, :2, :2] = True

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])


FAST = ev.BatchSettings(n_steps=4, n_samples=2, occlusion_window=2, occlusion_stride=2)


def test_table_numbers_are_the_metrics_of_the_maps():
    model = RegionNet()
    split = MaskedSplit(8)
    events = []
    result = ev.evaluate(model, split, ["saliency", "gradcam", "random"], n_images=6, mean=MEAN,
                         std=STD, settings=FAST, steps=4, on_progress=events.append)
    assert result.complete and [r["method"] for r in result.rows] == ["saliency", "gradcam", "random"]
    assert list(result.indices) == list(range(6))
    saliency = result.scores("saliency")
    assert saliency.maps.shape == (6, SIDE, SIDE)
    assert saliency.energy == pytest.approx(np.ones(6))  # the net reads only the mask
    assert result.rows[0]["energy"] == pytest.approx(1.0)
    assert saliency.energy == pytest.approx(ev.energy_in_mask(saliency.maps, split.masks[:6]))
    assert saliency.pointing == pytest.approx(ev.pointing_game(saliency.maps, split.masks[:6]))
    assert saliency.marker_share == pytest.approx(np.zeros(6))
    assert result.random_line("energy") == pytest.approx(SIZE * SIZE / SIDE ** 2)
    assert result.random_line("marker_share") == pytest.approx(4 / SIDE ** 2)
    assert result.random_line("deletion_auc") == pytest.approx(result.rows[2]["deletion_auc"])
    assert result.accuracy == pytest.approx(np.mean(result.predictions == split.labels[:6].numpy()))
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and events[-1]["kind"] == "done"


def test_csv_and_json_carry_the_same_numbers():
    result = ev.evaluate(RegionNet(), MaskedSplit(4), ["saliency", "deeplift"], n_images=4,
                         mean=MEAN, std=STD, settings=FAST, steps=4)
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert [r["method"] for r in rows] == ["saliency", "deeplift", "reference"]
    for row, expected in zip(rows, result.rows):
        for metric in ev.METRICS:
            assert float(row[metric]) == pytest.approx(expected[metric], rel=1e-5)
    assert float(rows[-1]["energy"]) == pytest.approx(result.random_line("energy"), rel=1e-5)
    payload = json.loads(json.dumps(result.to_json()))  # plain JSON types only
    assert payload["n_images"] == 4 and payload["metrics"] == list(ev.METRICS)
    assert payload["rows"][1]["method"] == "deeplift"
    assert payload["rows"][1]["energy"] == pytest.approx(result.rows[1]["energy"], abs=1e-6)
    assert payload["rows"][0]["reduction"] == "abs-sum" and payload["rows"][1]["reduction"] == "sum"
    assert payload["random"]["energy"] == pytest.approx(result.random_line("energy"), abs=1e-6)


def test_without_marker_masks_there_is_no_marker_column():
    result = ev.evaluate(RegionNet(), MaskedSplit(3, markers=False), ["saliency"], n_images=3,
                         mean=MEAN, std=STD, settings=FAST, steps=2)
    assert "marker_share" not in result.rows[0]
    assert "marker_share" not in result.to_csv().splitlines()[0]
    with pytest.raises(ValueError, match="no shortcut marker"):
        result.scores("saliency").values("marker_share")


def test_best_and_worst_follow_the_metric_direction():
    result = ev.evaluate(RegionNet(), MaskedSplit(6), ["random"], n_images=6, mean=MEAN, std=STD,
                         settings=FAST, steps=2)
    energy = result.scores("random").energy
    picked = result.best_worst("random", "energy", k=2)
    assert picked["best"] == [int(i) for i in np.argsort(-energy)[:2]]
    assert picked["worst"] == [int(i) for i in np.argsort(energy)[:2]]
    deletion = result.scores("random").deletion_auc
    assert result.best_worst("random", "deletion_auc", k=1)["best"] == [int(np.argmin(deletion))]


def test_stop_keeps_the_finished_methods_and_the_model_is_untouched():
    model = RegionNet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checks = iter(range(1000))
    # saliency: 1 check for its one chunk, then 3 curve steps; stop on gradcam's first check.
    result = ev.evaluate(model, MaskedSplit(4), ["saliency", "gradcam"], n_images=4, mean=MEAN,
                         std=STD, settings=FAST, steps=4, should_stop=lambda: next(checks) >= 4)
    assert not result.complete and [r["method"] for r in result.rows] == ["saliency"]
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_choices_say_what_is_wrong():
    split = MaskedSplit(2)
    with pytest.raises(ValueError, match="unknown method"):
        ev.evaluate(RegionNet(), split, ["lime"], n_images=2, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="target"):
        ev.evaluate(RegionNet(), split, ["saliency"], n_images=2, mean=MEAN, std=STD, target="x")
    with pytest.raises(ValueError, match="number of test images"):
        ev.evaluate(RegionNet(), split, ["saliency"], n_images=0, mean=MEAN, std=STD)
    plain = torch.utils.data.TensorDataset(torch.rand(2, 3, 4, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="no object masks"):
        ev.evaluate(RegionNet(), plain, ["saliency"], n_images=2, mean=MEAN, std=STD)


def test_evaluate_takes_mean_std_and_target_in_order_or_by_name():
    """The issue's call, `evaluate(model, test_split, methods, n_images, mean, std, target)`,
    is the keyword call's twin; without the statistics it says what is missing."""
    split = MaskedSplit(4)
    positional = ev.evaluate(RegionNet(), split, ["saliency"], 3, MEAN, STD, "predicted",
                             settings=FAST, steps=2)
    named = ev.evaluate(RegionNet(), split, ["saliency"], n_images=3, mean=MEAN, std=STD,
                        target="predicted", settings=FAST, steps=2)
    assert positional.settings["target"] == "predicted"
    assert positional.rows[0]["energy"] == named.rows[0]["energy"]
    assert positional.rows[0]["deletion_auc"] == named.rows[0]["deletion_auc"]
    with pytest.raises(ValueError, match="mean and std"):
        ev.evaluate(RegionNet(), split, ["saliency"], 3)


def test_json_names_what_was_evaluated():
    split = MaskedSplit(2)
    plain = ev.evaluate(RegionNet(), split, ["saliency"], 2, MEAN, STD, settings=FAST, steps=2)
    assert list(plain.to_json())[:3] == ["run_id", "dataset", "n_images"]
    assert plain.to_json()["run_id"] is None and plain.to_json()["dataset"] is None
    named = ev.evaluate(RegionNet(), split, ["saliency"], 2, MEAN, STD, settings=FAST, steps=2,
                        run_id="run-7", dataset="shapes")
    assert named.to_json()["run_id"] == "run-7" and named.to_json()["dataset"] == "shapes"
    # The insertion curve's start says the library's one sigma rule: side / 8, at least 1 px.
    assert named.to_json()["settings"]["insertion_start"] == f"Gaussian blur, sigma = {SIDE / 8:g} px"


class TinyShapesNet(nn.Module):
    stage_names = ["layer1"]

    def __init__(self, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.layer1(self.conv1(x)).mean(dim=(2, 3)))


def test_runs_on_the_shapes_dataset_with_its_marker_and_sanity_check():
    from resnext import data

    pair = data.shapes(n_train=8, n_test=6, image_size=16, seed=0, shortcut=0.9)
    model = TinyShapesNet(len(pair.classes))
    result = ev.evaluate(model, pair.test, ["saliency", "integrated_gradients_blurred"],
                         n_images=5, mean=pair.mean, std=pair.std, settings=FAST, steps=2,
                         target="predicted")
    assert result.has_marker and len(result.indices) == 5
    assert result.random_line("energy") == pytest.approx(pair.test.masks[:5].float().mean().item())
    assert list(result.targets) == list(result.predictions)
    sanity = ev.sanity_check(model, pair.test, ["gradcam"], n_images=3, mean=pair.mean,
                             std=pair.std, settings=FAST)
    assert sanity.steps == ["trained", "fc", "layer1", "stem"] and sanity.n_images == 3
    assert json.loads(json.dumps(sanity.to_json()))["curves"]["gradcam"]["spearman"][0] == 1.0
