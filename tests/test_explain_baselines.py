"""One of each (issue 17, section 2): one blur and one sigma rule, one baseline function for
the one-image and the batched paths, one pixel ranking for every deletion curve. Each test
fails if the old disagreement comes back."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from resnext.explain import batch, captum_calls, metrics, single
from resnext.explain.baselines import BASELINE_KINDS, blur_sigma, gaussian_blur, make_baseline

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
CAPTUM_CALL = captum_calls.captum_call


def naive_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """A 2-D Gaussian, pixel by pixel, with reflected indices (written independently of the
    separable code): (C, H, W) -> (C, H, W) float64."""
    channels, height, width = image.shape
    radius = min(max(1, int(3 * sigma)), height - 1, width - 1)

    def reflect(i: int, n: int) -> int:
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    weights = {(dy, dx): math.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
               for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)}
    total = sum(weights.values())
    out = torch.zeros(channels, height, width, dtype=torch.float64)
    for r in range(height):
        for c in range(width):
            for (dy, dx), w in weights.items():
                out[:, r, c] += w * image[:, reflect(r + dy, height), reflect(c + dx, width)].double()
    return out / total


@pytest.mark.parametrize("sigma,side", [(1.0, 9), (2.0, 12), (4.0, 6)])  # 4.0 on 6 px: radius cut
def test_blur_is_a_reflect_padded_gaussian(sigma, side):
    image = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    got = gaussian_blur(image, sigma)[0].double()
    assert torch.allclose(got, naive_blur(image[0], sigma), atol=1e-6)
    flat = torch.full((2, 3, side, side), 0.7)
    assert torch.allclose(gaussian_blur(flat, sigma), flat, atol=1e-6)  # reflect: no dark edges


def test_one_sigma_rule_an_eighth_of_the_shorter_side():
    assert blur_sigma(32, 32) == 4.0  # the shapes runs' 32 px
    assert blur_sigma(224, 224) == 28.0
    assert blur_sigma(16, 40) == 2.0
    assert blur_sigma(4, 4) == 1.0  # at least a pixel
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(gaussian_blur(image), gaussian_blur(image, 4.0))
    assert torch.equal(make_baseline(image, "blurred"), gaussian_blur(image, 4.0))
    # The Attributions tab's old rule (side / 20 = 1.6 px) is not it.
    assert not torch.allclose(make_baseline(image, "blurred"), gaussian_blur(image, 1.6))


def test_each_kind_of_baseline():
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    black = make_baseline(images, "black", MEAN, STD)
    assert torch.allclose(black * std + mean, torch.zeros_like(images), atol=1e-6)
    assert torch.equal(make_baseline(images, "mean"), torch.zeros_like(images))
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    noise = make_baseline(images, "noise", MEAN, STD, seed=3)
    assert torch.equal(torch.rand(1), expected_next)  # the global random state is untouched
    pixels = noise * std + mean
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert torch.equal(noise, make_baseline(images, "noise", MEAN, STD, seed=3))
    assert not torch.equal(noise, make_baseline(images, "noise", MEAN, STD, seed=4))
    with pytest.raises(ValueError, match="baseline must be one of black, blurred, mean, noise"):
        make_baseline(images, "white", MEAN, STD)
    with pytest.raises(ValueError, match="black baseline needs the mean and std"):
        make_baseline(images, "black")
    with pytest.raises(ValueError, match="mean has 2 values; the images have 3 channels"):
        make_baseline(images, "black", (0.5, 0.5), STD)
    assert BASELINE_KINDS == ("black", "blurred", "mean", "noise")


class Recorder(nn.Module):
    """Logits from the mean of channel 0 (two classes); keeps every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        value = self.scale * x[:, 0].mean(dim=(1, 2))
        return torch.stack([value, -value], dim=1)


def captured_baselines(monkeypatch, run) -> list[torch.Tensor]:
    """The `baselines` each Captum call of `run()` was given."""
    seen: list[torch.Tensor] = []

    def spy(model, method, x, target, **parameters):
        seen.append(parameters.get("baselines"))
        return CAPTUM_CALL(model, method, x, target, **parameters)

    monkeypatch.setattr(captum_calls, "captum_call", spy)
    run()
    return seen


def test_the_tabs_blurred_baseline_is_the_evaluations_and_the_insertion_start(monkeypatch):
    """"Integrated Gradients (blurred)" is one method: the Attributions tab (one image) and
    the Evaluate tab (a batch) integrate from the same image, the insertion curve's start."""
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    model = Recorder()
    settings = single.AttributionSettings(method="integrated_gradients", baseline="blurred",
                                          n_steps=4, internal_batch_size=4)
    one = captured_baselines(monkeypatch, lambda: single.attribute(
        model, image, 0, settings, mean=MEAN, std=STD))
    many = captured_baselines(monkeypatch, lambda: batch.attribute_batch(
        model, image, [0], "integrated_gradients_blurred", mean=MEAN, std=STD,
        settings=batch.BatchSettings(n_steps=4)))
    assert len(one) == len(many) == 1
    assert torch.equal(one[0], many[0])
    model.seen.clear()
    metrics.curve_ends(model, image, torch.tensor([0]))
    original, filled, blurred = model.seen[0].split(1)
    assert torch.allclose(blurred, one[0], atol=1e-7)
    assert torch.equal(original, image) and torch.equal(filled, torch.zeros_like(image))


class PixelWeights(nn.Module):
    """logit_0 = sum(w * x) with distinct per-pixel weights: each set of removed pixels gives
    its own probability, so two rankings that differ anywhere give different curves."""

    def __init__(self, side: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(4)
        self.register_buffer("w", torch.rand(1, 3, side, side, generator=generator) / side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.w).flatten(1).sum(dim=1)
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def test_one_images_deletion_curve_ranks_pixels_as_the_evaluation_does():
    side, steps = 12, 6
    model = PixelWeights(side).eval()
    image = torch.ones(1, 3, side, side)
    pixel_map = np.zeros((side, side), dtype=np.float32)
    pixel_map[3:6, 4:9] = np.arange(1, 16, dtype=np.float32).reshape(3, 5)  # 129 tied zeros
    one = single.deletion_curve(model, image, pixel_map, target=0, steps=steps, seed=0)
    curves = metrics.perturbation_curves(model, image, torch.from_numpy(pixel_map)[None],
                                         torch.tensor([0]), steps=steps, seed=0)
    np.testing.assert_allclose(one.probabilities, curves.deletion[0], rtol=1e-6)
    assert one.auc == pytest.approx(float(curves.deletion_auc[0]), rel=1e-6)
    ranks = metrics.pixel_ranks(torch.from_numpy(pixel_map)[None], seed=0)[0]
    # The tie order matters here: another seed's order removes other zeros first.
    other = single.deletion_curve(model, image, pixel_map, target=0, steps=steps, seed=1)
    assert not np.allclose(one.probabilities[1:-1], other.probabilities[1:-1], rtol=1e-6)
    assert int(ranks[5, 8]) == 0  # the most attributed pixel (15) goes first
