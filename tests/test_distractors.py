"""shapes-distractors (resnext.data) and the share on distractors (resnext.explain): the
labelled shape among 1-3 smaller shapes of other classes, every pixel of each known."""

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from resnext import data, explain
from resnext.data import synthetic
from resnext.explain import evaluation as ev

NAME = next(name for name, entry in data.DATASETS.items() if entry.distractors)


@pytest.fixture(scope="module")
def pair():
    return data.shapes_distractors(n_train=40, n_test=60, image_size=32, seed=5)


# The dataset -------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(pair):
    again = data.shapes_distractors(n_train=40, n_test=60, image_size=32, seed=5)
    for split in ("train", "test"):
        for field in ("images", "labels", "masks", "distractor_masks"):
            assert torch.equal(getattr(getattr(again, split), field),
                               getattr(getattr(pair, split), field)), (split, field)
    other = data.shapes_distractors(n_train=40, n_test=60, image_size=32, seed=6)
    assert not torch.equal(other.test.images, pair.test.images)
    # The test split does not depend on how many training images there are.
    fewer = data.shapes_distractors(n_train=7, n_test=60, image_size=32, seed=5)
    assert torch.equal(fewer.test.distractor_masks, pair.test.distractor_masks)


def test_the_name_is_the_registrys_and_only_this_entry_has_distractors(pair):
    assert pair.name == NAME == "shapes-distractors"
    assert [n for n, e in data.DATASETS.items() if e.distractors] == [NAME]
    assert pair.classes == data.SHAPE_CLASSES and pair.test.marker_masks is None
    assert data.shapes(n_train=2, n_test=2).test.distractor_masks is None


def colours(image, mask):
    """The distinct colours (rows of 3 uint8) of an image's (3, H, W) pixels under `mask`."""
    return torch.unique(image[:, mask].T, dim=0)


def test_masks_are_the_target_and_the_other_shapes(pair):
    split = pair.test
    assert split.masks.shape == split.distractor_masks.shape == (60, 32, 32)
    assert split.masks.dtype == split.distractor_masks.dtype == torch.bool
    assert not (split.masks & split.distractor_masks).any()  # no pixel is both
    for index in range(len(split)):
        image, target, others = split.images[index], split.masks[index], split.distractor_masks[index]
        assert target.sum() >= 20 and others.sum() >= 1, index
        assert len(colours(image, target)) == 1  # the target: one uniformly coloured shape
        shades = colours(image, others)
        assert 1 <= len(shades) <= synthetic.DISTRACTORS[1]  # one colour per distractor
        # The masks are the shapes, not more: around them the colour changes.
        both = target | others
        grown = torch.nn.functional.max_pool2d(both[None, None].float(), 3, 1, 1)[0, 0].bool()
        ring = image[:, grown & ~both].T  # (pixels, 3)
        painted = torch.cat([colours(image, target), shades])
        same = (ring[:, None, :] == painted[None]).all(dim=-1).any(dim=1)
        assert same.float().mean() < 0.1, index
        # And no shape lies outside them: no pixel elsewhere has a shape's colour.
        outside = image[:, ~grown].T
        assert not (outside[:, None, :] == painted[None]).all(dim=-1).any(), index


def test_subset_and_from_spec_carry_the_distractor_masks(pair):
    part = data.subset(pair, 10, 5)
    assert torch.equal(part.test.distractor_masks, pair.test.distractor_masks[:5])
    assert torch.equal(part.train.distractor_masks, pair.train.distractor_masks[:10])
    rebuilt = data.from_spec(pair.describe())
    assert torch.equal(rebuilt.test.distractor_masks, pair.test.distractor_masks)
    assert torch.equal(rebuilt.train.images, pair.train.images)


def test_registry_round_trip_and_the_command_lines():
    spec = data.request_spec(NAME, n_train=12, n_test=6, image_size=16, seed=2)
    made = data.from_spec(spec)
    assert made.name == NAME and made.image_size == 16 and len(made.train) == 12
    direct = data.shapes_distractors(n_train=12, n_test=6, image_size=16, seed=2)
    assert torch.equal(made.test.images, direct.test.images)
    assert torch.equal(data.from_spec(made.describe()).test.distractor_masks,
                       made.test.distractor_masks)
    default = data.from_spec({"name": NAME, "sizes": {"train": 3, "test": 3}})
    assert default.image_size == data.DATASETS[NAME].image_size
    from resnext.study import data_spec
    from resnext.train.__main__ import load_data, parser

    args = parser().parse_args(["--data", NAME, "--train-size", "12", "--test-size", "6",
                                "--image-size", "16", "--seed", "2"])
    assert torch.equal(load_data(args).test.masks, made.test.masks)
    studied = data_spec(NAME, train_size=12, test_size=6, image_size=16, seed=2)
    assert torch.equal(data.from_spec(studied).test.images, made.test.images)
    assert "shortcut" not in studied
    with pytest.raises(ValueError, match="--data must be shapes, shapes-shortcut, "
                                         "shapes-distractors, cifar10"):
        data_spec("shapes-distractor")


def test_reach_covers_every_shape_and_is_tight():
    """Each class's REACH is the farthest its shape goes from its centre (in radii), which
    the layout's no-overlap rule relies on: measured here on a fine grid of the unit frame."""
    grid = torch.linspace(-1.5, 1.5, 1201, dtype=torch.float64)
    u, v = grid.view(-1, 1).expand(1201, 1201), grid.view(1, -1).expand(1201, 1201)
    distance = (u * u + v * v).sqrt()
    for shape, name in enumerate(data.SHAPE_CLASSES):
        inside = synthetic._inside(shape, u, v)
        farthest = float(distance[inside].max())
        assert farthest <= synthetic.REACH[shape] + 1e-9, name
        assert farthest >= synthetic.REACH[shape] - 0.005, name


def test_layout_follows_the_rules():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(6000) % 6
    classes, centres, radii, present = synthetic._layout(labels, 32, generator)
    assert torch.equal(classes[:, 0], labels) and present[:, 0].all()
    others = classes[:, 1:]
    assert (others != labels[:, None]).all()  # no distractor of the label's class
    assert (others[:, 0] != others[:, 1]).all() and (others[:, 1] != others[:, 2]).all()
    assert (others[:, 0] != others[:, 2]).all()  # each of another class
    scale = radii[:, 1:] / radii[:, :1]
    low, high = synthetic.DISTRACTOR_SCALE
    assert (scale >= low - 1e-6).all() and (scale <= high + 1e-6).all()  # the target is largest
    low, high = synthetic.TARGET_RADIUS
    assert (radii[:, 0] >= low).all() and (radii[:, 0] <= high).all()
    # No two present shapes' reach circles come within a pixel of each other.
    reach = synthetic.REACH[classes] * radii
    for i in range(4):
        for j in range(i + 1, 4):
            both = present[:, i] & present[:, j]
            gap = (centres[both, i] - centres[both, j]).norm(dim=1) - reach[both, i] - reach[both, j]
            assert (gap >= 1 / 32 - 1e-6).all(), (i, j)
    # 1-3 distractors, about a third each; a distractor without a free place is rare.
    counts = torch.bincount(present[:, 1:].sum(dim=1), minlength=4)
    assert counts[0] == 0
    assert ((counts[1:].float() / len(labels) - 1 / 3).abs() < 0.025).all(), counts


def test_a_small_network_can_tell_the_target_from_its_size():
    """The rule is learnable from what the masks say: the label's shape is the largest.
    Checked here without training: in every test image the target's pixel extent (its
    farthest pixel from its centroid) exceeds each distractor colour-group's."""
    split = data.shapes_distractors(n_train=1, n_test=40, image_size=64, seed=1).test
    for index in range(len(split)):
        image = split.images[index]

        def extent(mask):
            ys, xs = mask.nonzero(as_tuple=True)
            centre_y, centre_x = ys.float().mean(), xs.float().mean()
            return float(((ys - centre_y) ** 2 + (xs - centre_x) ** 2).sqrt().max())

        target = extent(split.masks[index])
        others = split.distractor_masks[index]
        for shade in colours(image, others):
            group = others & (image == shade.view(3, 1, 1)).all(dim=0)
            assert extent(group) < target, index


# The metric --------------------------------------------------------------------------------


def share_by_loop(maps, masks):
    """The definition written out: positive attribution on the mask over all positive
    attribution, image by image, pixel by pixel; 0 without positive attribution."""
    shares = []
    for image_map, mask in zip(maps.tolist(), masks.tolist()):
        total = on = 0.0
        for row_values, row_mask in zip(image_map, mask):
            for value, inside in zip(row_values, row_mask):
                if value > 0:
                    total += value
                    on += value if inside else 0.0
        shares.append(on / total if total > 0 else 0.0)
    return np.array(shares)


def test_distractor_share_on_hand_made_maps():
    target = torch.zeros(3, 8, 8, dtype=torch.bool)
    target[:, 1:4, 1:4] = True
    distractor = torch.zeros(3, 8, 8, dtype=torch.bool)
    distractor[:, 5:7, 4:8] = True  # 8 of 64 pixels
    on_distractor = distractor.double() * 3.0
    on_target = target.double() * 2.0 - distractor.double()  # negatives there are not energy
    uniform = torch.ones(3, 8, 8)
    assert explain.distractor_share(on_distractor, distractor) == pytest.approx([1, 1, 1])
    assert explain.distractor_share(on_target, distractor) == pytest.approx([0, 0, 0])
    assert explain.distractor_share(uniform, distractor) == pytest.approx([8 / 64] * 3)
    assert explain.random_baseline(distractor) == pytest.approx([8 / 64] * 3)
    assert explain.distractor_share(torch.zeros(3, 8, 8), distractor) == pytest.approx([0] * 3)
    maps = torch.randn(5, 8, 8, generator=torch.Generator().manual_seed(1))
    masks = torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.3
    assert explain.distractor_share(maps, masks) == pytest.approx(share_by_loop(maps, masks))
    with pytest.raises(ValueError, match="masks must be boolean"):
        explain.distractor_share(maps, masks.float())


# The evaluation and the study --------------------------------------------------------------


def tiny_model(classes: int = 6):
    import resnext

    torch.manual_seed(0)
    cfg = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=8, base_planes=8,
                                stage_blocks=(1, 1, 1), stem="cifar", num_classes=classes)
    return resnext.build_model(cfg).eval()


def test_evaluate_reports_the_share_on_distractors(pair):
    model = tiny_model()
    result = ev.evaluate(model, pair.test, ["saliency", "gradcam"], n_images=8, mean=pair.mean,
                         std=pair.std, steps=2)
    masks, distractors = pair.test.masks[:8], pair.test.distractor_masks[:8]
    assert result.has_distractors and "distractor_share" in result.metrics
    for scores in result.methods:
        assert scores.distractor_share == pytest.approx(share_by_loop(scores.maps, distractors))
        assert scores.energy == pytest.approx(share_by_loop(scores.maps, masks))
    area = distractors.double().mean(dim=(1, 2)).mean()
    assert result.random_line("distractor_share") == pytest.approx(float(area))
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["metrics"] == ["energy", "pointing", "deletion_auc", "insertion_auc",
                                  "distractor_share"]
    saliency = result.scores("saliency").distractor_share
    assert payload["rows"][0]["distractor_share"] == pytest.approx(saliency.mean(), abs=1e-6)
    assert payload["rows"][0]["sem"]["distractor_share"] == pytest.approx(
        saliency.std(ddof=1) / math.sqrt(8), abs=1e-6)
    assert payload["random"]["distractor_share"] == pytest.approx(float(area), abs=1e-6)
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    assert float(rows[1]["distractor_share"]) == pytest.approx(
        result.scores("gradcam").distractor_share.mean(), rel=1e-5)
    assert float(rows[-1]["distractor_share"]) == pytest.approx(float(area), rel=1e-5)


def test_on_shapes_the_json_has_no_distractor_share():
    plain = data.shapes(n_train=8, n_test=6, image_size=32, seed=0)
    result = ev.evaluate(tiny_model(), plain.test, ["saliency"], n_images=4, mean=plain.mean,
                         std=plain.std, steps=2)
    payload = result.to_json()
    assert payload["metrics"] == ["energy", "pointing", "deletion_auc", "insertion_auc"]
    assert "distractor_share" not in payload["rows"][0]
    assert "distractor_share" not in payload["random"] and not result.has_distractors
    assert "distractor_share" not in result.to_csv().splitlines()[0]
    with pytest.raises(ValueError, match="no distractor masks"):
        result.scores("saliency").values("distractor_share")


def test_a_study_trial_carries_the_share_and_show_prints_it(pair):
    from resnext.study import reporting, stats
    from resnext.study.trial import score

    metrics = score(tiny_model(), pair, ("saliency", "gradcam"), 6)
    assert set(metrics) == {"saliency", "gradcam"}
    assert metrics["gradcam"]["distractor_share"] == pytest.approx(
        ev.evaluate(tiny_model(), pair.test, ["gradcam"], n_images=6, mean=pair.mean,
                    std=pair.std).rows[0]["distractor_share"], abs=1e-6)
    shares = [0.2, 0.3, 0.25]
    point = {"value": 1, "name": "net", "macs": 1e6, "params": 1e3, "n": 3,
             "accuracy": stats.summary([0.5, 0.6, 0.55]), "vs_best": {},
             "metrics": {"gradcam": {"energy": stats.summary([0.4, 0.5, 0.45]),
                                     "distractor_share": stats.summary(shares)}}}
    lines = reporting._point_lines({"points": [point]})
    assert "gradcam on distractors" in lines[0]
    low, high = stats.summary(shares)["ci95"]
    assert f"0.250 [{low:.3f}, {high:.3f}]" in lines[2]
