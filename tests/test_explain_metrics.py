"""Evaluation metrics on hand-made maps with known answers, and against naive per-pixel
loops written independently of the vectorised code (Quantus was not added: its 0.6.0
wheel pulls opencv-python, scipy, scikit-learn and scikit-image, ~150 MB, into CI)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from resnext.explain.baselines import gaussian_blur
from resnext.explain.metrics import (
    curve_ends,
    energy_in_mask,
    marker_share,
    perturbation_curves,
    pixel_ranks,
    pointing_game,
    random_baseline,
    widen,
)


def box_mask(n, side, top, left, height, width):
    mask = torch.zeros(n, side, side, dtype=torch.bool)
    mask[:, top:top + height, left:left + width] = True
    return mask


# Independent references: one pixel at a time, plain Python ---------------------------------

def naive_energy(values, mask):
    inside = total = 0.0
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            v = max(float(values[r, c]), 0.0)
            total += v
            if mask[r, c]:
                inside += v
    return inside / total if total > 0 else 0.0


def naive_near(mask, r, c, tolerance):
    for rr in range(mask.shape[0]):
        for cc in range(mask.shape[1]):
            if mask[rr, cc] and math.hypot(rr - r, cc - c) <= tolerance:
                return True
    return False


def naive_pointing(values, mask, tolerance):
    peak = max(float(v) for v in values.flatten())
    tied = [(r, c) for r in range(values.shape[0]) for c in range(values.shape[1])
            if float(values[r, c]) == peak]
    return sum(naive_near(mask, r, c, tolerance) for r, c in tied) / len(tied)


# Energy ----------------------------------------------------------------------------------

def test_map_equal_to_mask_scores_one():
    masks = box_mask(3, 12, 2, 3, 5, 4)
    maps = masks.float()
    assert np.allclose(energy_in_mask(maps, masks), 1.0)
    assert np.allclose(pointing_game(maps, masks), 1.0)


def test_uniform_map_scores_the_mask_share():
    masks = box_mask(2, 10, 0, 0, 5, 4)  # 20 of 100 pixels
    maps = torch.full((2, 10, 10), 0.7)
    assert np.allclose(energy_in_mask(maps, masks), 0.2)
    assert np.allclose(pointing_game(maps, masks), 0.2)  # ties: share of tied maxima inside
    assert np.allclose(random_baseline(masks), 0.2)


def test_no_positive_values_scores_zero_and_negatives_are_not_energy():
    masks = box_mask(1, 8, 2, 2, 3, 3)
    assert energy_in_mask(-torch.rand(1, 8, 8), masks)[0] == 0.0
    assert energy_in_mask(torch.zeros(1, 8, 8), masks)[0] == 0.0
    maps = torch.where(masks, torch.tensor(1.0), torch.tensor(-5.0))  # strong negatives outside
    assert energy_in_mask(maps, masks)[0] == pytest.approx(1.0)
    maps[0, 0, 0] = 1.0  # one positive pixel outside: 1 of 10 units of positive energy
    assert energy_in_mask(maps, masks)[0] == pytest.approx(9 / 10)


def test_energy_accepts_numpy_and_checks_shapes():
    masks = box_mask(2, 6, 1, 1, 2, 2).numpy()
    maps = np.ones((2, 6, 6))
    assert np.allclose(energy_in_mask(maps, masks), 4 / 36)
    with pytest.raises(ValueError, match="differ in shape"):
        energy_in_mask(np.ones((2, 6, 5)), masks)
    with pytest.raises(ValueError, match="boolean"):
        energy_in_mask(maps, masks.astype(np.float32))
    with pytest.raises(ValueError, match="NaN"):
        energy_in_mask(np.full((2, 6, 6), np.nan), masks)


def test_marker_share_is_energy_on_the_marker():
    markers = box_mask(1, 8, 0, 0, 2, 2)
    maps = torch.zeros(1, 8, 8)
    maps[0, 0, 0] = 3.0
    maps[0, 5, 5] = 1.0
    assert marker_share(maps, markers)[0] == pytest.approx(0.75)


# Pointing game ---------------------------------------------------------------------------

def test_pointing_tolerance_counts_pixels_by_euclidean_distance():
    masks = box_mask(1, 16, 4, 4, 3, 3)  # rows/cols 4..6
    maps = torch.zeros(1, 16, 16)
    maps[0, 9, 5] = 1.0  # 3 rows below the mask's last row
    assert pointing_game(maps, masks, tolerance=0)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=2)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=3)[0] == 1.0
    maps = torch.zeros(1, 16, 16)
    maps[0, 8, 8] = 1.0  # diagonal from (6, 6): distance sqrt(8) = 2.83
    assert pointing_game(maps, masks, tolerance=2)[0] == 0.0
    assert pointing_game(maps, masks, tolerance=3)[0] == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        pointing_game(maps, masks, tolerance=-1)


def test_pointing_ties_score_the_share_of_tied_maxima_inside():
    masks = box_mask(1, 8, 0, 0, 4, 8)  # top half
    maps = torch.zeros(1, 8, 8)
    maps[0, 1, 1] = maps[0, 2, 2] = maps[0, 6, 6] = maps[0, 7, 0] = 5.0
    assert pointing_game(maps, masks)[0] == pytest.approx(0.5)


def test_metrics_match_naive_loops_on_random_cases():
    generator = torch.Generator().manual_seed(3)
    for case in range(6):
        side = 9 + case
        maps = torch.randn(2, side, side, generator=generator)
        if case % 2:
            maps = maps.round()  # integer maps: ties at the maximum
        masks = torch.rand(2, side, side, generator=generator) > 0.8
        tolerance = case % 3
        energy = energy_in_mask(maps, masks)
        pointing = pointing_game(maps, masks, tolerance)
        widened = widen(masks, tolerance)
        for i in range(2):
            assert energy[i] == pytest.approx(naive_energy(maps[i], masks[i]), abs=1e-12)
            assert pointing[i] == pytest.approx(naive_pointing(maps[i], masks[i], tolerance))
            share = sum(naive_near(masks[i], r, c, tolerance)
                        for r in range(side) for c in range(side)) / side ** 2
            assert random_baseline(masks, tolerance)[i] == pytest.approx(share)
            assert widened[i].float().mean().item() == pytest.approx(share)


# Deletion and insertion ------------------------------------------------------------------

class WindowReader(nn.Module):
    """Class 0's logit = a * (mean of channel 0 over a fixed window - offset); class 1's = 0."""

    def __init__(self, top, left, size, a=4.0, offset=0.0):
        super().__init__()
        self.window = (top, left, size)
        self.a = a
        self.offset = offset

    def forward(self, x):
        top, left, size = self.window
        mean = x[:, 0, top:top + size, left:left + size].mean(dim=(1, 2))
        return torch.stack([self.a * (mean - self.offset), torch.zeros_like(mean)], dim=1)


def test_pixel_ranks_are_a_permutation_with_random_tie_breaks():
    maps = torch.zeros(1, 8, 8)
    maps[0, 7, 7] = 1.0
    ranks = pixel_ranks(maps, seed=0)[0].flatten()
    assert sorted(ranks.tolist()) == list(range(64))
    assert ranks[63] == 0  # the one attributed pixel goes first
    raster = torch.arange(64)
    assert not torch.equal(ranks[:63], raster[1:])  # ties are not swept in raster order


def test_deletion_and_insertion_curves_match_a_pixel_by_pixel_reference():
    side, top, left, size = 8, 2, 3, 3
    model = WindowReader(top, left, size).eval()
    image = torch.zeros(1, 3, side, side)
    image[0, 0, top:top + size, left:left + size] = torch.arange(1.0, 10.0).view(3, 3)
    maps = torch.rand(1, side, side, generator=torch.Generator().manual_seed(1))  # distinct values
    steps = 8
    curves = perturbation_curves(model, image, maps, torch.tensor([0]), steps=steps, max_batch=4)
    blurred = gaussian_blur(image, max(1.0, side / 8))
    order = sorted(range(side * side), key=lambda p: -float(maps.flatten()[p]))
    for k in range(steps + 1):
        first = set(order[:round(side * side * k / steps)])
        deleted, inserted = image.clone(), blurred.clone()
        for p in range(side * side):
            r, c = divmod(p, side)
            if p in first:
                deleted[0, :, r, c] = 0.0
                inserted[0, :, r, c] = image[0, :, r, c]
        for curve, x in ((curves.deletion, deleted), (curves.insertion, inserted)):
            probability = torch.softmax(model(x), dim=1)[0, 0].item()
            assert curve[0, k] == pytest.approx(probability, abs=1e-6)
    assert curves.fractions.tolist() == [k / steps for k in range(steps + 1)]
    trapezoid = sum((curves.deletion[0, k] + curves.deletion[0, k + 1]) / 2 / steps for k in range(steps))
    assert curves.deletion_auc[0] == pytest.approx(trapezoid)


def test_a_map_on_the_evidence_deletes_faster_and_inserts_faster_than_one_off_it():
    side, top, left, size = 16, 4, 4, 4
    model = WindowReader(top, left, size, a=12.0, offset=0.75).eval()  # the blur loses it
    images = torch.zeros(2, 3, side, side)
    images[:, 0, top:top + size, left:left + size] = 1.0
    window = box_mask(2, side, top, left, size, size).float()
    maps = torch.stack([window[0], 1.0 - window[1]])  # image 0: right map; image 1: wrong map
    targets = torch.tensor([0, 0])
    curves = perturbation_curves(model, images, maps, targets, steps=16, max_batch=64)
    assert curves.deletion_auc[0] < curves.deletion_auc[1] - 0.2
    assert curves.insertion_auc[0] > curves.insertion_auc[1] + 0.1
    # The right map removes the whole window within 16/256 of the pixels: p drops to
    # sigmoid(-12 * 0.75), and reveals it as fast: p rises to sigmoid(12 * 0.25).
    assert curves.deletion[0, 1] == pytest.approx(1 / (1 + math.exp(9)))
    assert curves.insertion[0, 1] == pytest.approx(1 / (1 + math.exp(-3)))
    # Shared ends, computed once, give the same curves.
    ends = curve_ends(model, images, targets)
    again = perturbation_curves(model, images, maps, targets, steps=16, ends=ends)
    assert np.allclose(again.deletion, curves.deletion) and np.allclose(again.insertion, curves.insertion)
