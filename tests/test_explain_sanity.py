"""Randomization sanity check (Adebayo et al. 2018): rank correlation against naive
references; maps that ignore the weights stay at 1, gradients fall."""

import math

import numpy as np
import pytest
import torch

import resnext
from resnext.explain.sanity import (
    average_ranks,
    cascade_groups,
    randomization_check,
    spearman,
    ssim,
    topk_overlap,
)
from tests.conftest import randomize_batchnorm


def naive_average_ranks(values):
    ranks = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        ranks.append(below + (equal - 1) / 2)
    return ranks


def naive_spearman(a, b):
    ra, rb = naive_average_ranks(a), naive_average_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def test_average_ranks_and_spearman_match_naive_references_with_ties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (3, 6, 6), generator=generator).double()  # many ties
    b = torch.randint(0, 5, (3, 6, 6), generator=generator).double()
    ranks = average_ranks(a.flatten(1))
    for i in range(3):
        assert ranks[i].tolist() == pytest.approx(naive_average_ranks(a[i].flatten().tolist()))
    rho = spearman(a, b)
    for i in range(3):
        assert rho[i] == pytest.approx(naive_spearman(a[i].flatten().tolist(), b[i].flatten().tolist()))
    assert spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(torch.ones(1, 6, 6), a[:1])[0])  # constant map: no ranking
    with pytest.raises(ValueError, match="differ in shape"):
        spearman(torch.ones(1, 4, 4), a[:1])


def test_ssim_and_topk_overlap_on_known_cases():
    maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(1))
    assert ssim(maps, maps * 5) == pytest.approx(1.0, abs=1e-4)  # scale-free: each map / its max
    assert ssim(maps, 1 - maps).max() < 0.5
    assert topk_overlap(maps, maps) == pytest.approx(1.0)
    assert topk_overlap(maps, -maps, fraction=0.1) == pytest.approx(0.0)
    a = torch.zeros(1, 10, 10)
    b = torch.zeros(1, 10, 10)
    a.view(-1)[:10] = torch.arange(10.0, 0, -1)  # top-10 % = first 10 pixels
    b.view(-1)[5:15] = torch.arange(10.0, 0, -1)  # shares pixels 5..9
    assert topk_overlap(a, b, fraction=0.1)[0] == pytest.approx(0.5)


def blob_maps():
    """Two disjoint 36-pixel blobs (6x6) in 32x32 maps, zeros elsewhere: a sparse map (a
    ReLU'd Grad-CAM) before and after its weights were destroyed."""
    a = torch.zeros(1, 32, 32)
    b = torch.zeros(1, 32, 32)
    a[0, 2:8, 2:8] = 1.0
    b[0, 20:26, 20:26] = 1.0
    return a, b


def raster_topk_overlap(a, b, fraction=0.1):
    """Top-k sets with ties taken in raster order (a stable sort), as plain Python sets."""
    k = math.ceil(fraction * a[0].numel())
    top_a = set(torch.sort(-a.flatten(), stable=True).indices[:k].tolist())
    top_b = set(torch.sort(-b.flatten(), stable=True).indices[:k].tolist())
    return len(top_a & top_b) / k


def test_topk_overlap_breaks_ties_at_random_not_in_raster_order():
    a, b = blob_maps()
    k = math.ceil(0.1 * 32 * 32)  # 103: the 36 blob pixels and 67 of the 988 zeros
    # A fixed order of ties has both maps take the same zeros: raster order gives 67/103 =
    # 0.65, torch.topk's order (the rule before issue 17) gave 51/103 = 0.495.
    assert raster_topk_overlap(a, b) == pytest.approx(67 / 103)
    # Each map's 67 zeros drawn at random: expected overlap = (a's blob in b's zeros + b's
    # blob in a's zeros + zeros both drew) / k.
    share = 67 / 988
    expected = (2 * 36 * share + (32 * 32 - 72) * share ** 2) / k
    assert expected == pytest.approx(0.09, abs=0.001)
    values = [topk_overlap(a, b, seed=seed)[0] for seed in range(100)]
    assert np.mean(values) == pytest.approx(expected, abs=0.01)
    assert topk_overlap(a, b)[0] < 0.2  # the default seed, one draw
    assert topk_overlap(a, b)[0] == topk_overlap(a, b)[0]  # seeded: the same answer again


def test_topk_overlap_of_untied_maps_is_the_plain_set_overlap():
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(4, 12, 12, generator=generator)
    b = a + 0.3 * torch.rand(4, 12, 12, generator=generator)  # related, distinct values
    got = topk_overlap(a, b, fraction=0.2)
    for i in range(4):
        assert got[i] == pytest.approx(raster_topk_overlap(a[i:i + 1], b[i:i + 1], 0.2))
        assert got[i] == topk_overlap(a, b, fraction=0.2, seed=9)[i]  # no tie: no seed matters


def small_model():
    cfg = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=8, stage_blocks=(1, 1),
                                num_classes=4, stem="cifar", base_planes=8)
    model = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0)).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    return model


def image_edges(model, images, targets):
    """A 'method' that never looks at the weights: the image's own intensity."""
    return images.abs().sum(dim=1)


def test_cascade_order_is_classifier_stages_from_the_top_then_stem():
    assert [name for name, _ in cascade_groups(small_model())] == ["fc", "layer2", "layer1", "stem"]


def test_weight_independent_maps_stay_at_one_and_saliency_falls():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    events = []
    result = randomization_check(model, images, targets, ["saliency", ("edges", image_edges)],
                                 mean=(0.5,) * 3, std=(0.25,) * 3, on_progress=events.append)
    assert result.steps == ["trained", "fc", "layer2", "layer1", "stem"]
    for measure in ("spearman", "ssim", "topk"):
        assert result.curves["edges"][measure] == pytest.approx([1.0] * 5, abs=1e-4)
        assert result.per_image["saliency"][measure].shape == (5, 6)
    saliency = result.curves["saliency"]["spearman"]
    assert saliency[0] == 1.0 and saliency[-1] < 0.5
    assert result.curves["saliency"]["topk"][-1] < 0.6
    # The caller's model is untouched: the cascade runs on a copy.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert events[-1]["fraction"] == pytest.approx(1.0)
    payload = result.to_json()
    assert payload["steps"] == result.steps and payload["curves"]["edges"]["spearman"][-1] == pytest.approx(1.0)


def test_stopping_keeps_the_finished_steps():
    model = small_model()
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    calls = iter(range(100))
    result = randomization_check(model, images, torch.tensor([0, 1]), ["gradcam"],
                                 should_stop=lambda: next(calls) >= 3)
    assert not result.complete
    assert 1 <= len(result.steps) < 5
    assert all(len(v) == len(result.steps) for v in result.curves["gradcam"].values())
    assert isinstance(result.per_image["gradcam"]["spearman"], np.ndarray)
