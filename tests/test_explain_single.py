"""One image's attribution (`resnext.explain.single`): known answers on tiny models, IG
completeness, stopping at the next forward pass, the deletion curve on a known order."""

import numpy as np
import pytest
import torch
from torch import nn

import resnext
from conftest import randomize_batchnorm
from resnext.explain import single as attribution
from resnext.explain.baselines import make_baseline
from resnext.explain.stopping import Stopped
from resnext.imaging import IMAGENET_MEAN, IMAGENET_STD

# 4 stages so every Grad-CAM layer kind exists; 10 classes so there is a top-5.
TINY = resnext.ResNeXtConfig(cardinality=4, bottleneck_width=2, stage_blocks=(1, 1, 1, 1),
                             num_classes=10)
FAST = dict(n_steps=8, n_samples=4, internal_batch_size=4, window=8, stride=8)


class RegionModel(nn.Module):
    """Reads only the top-left 8×8 of a 16×16 image: 1×1 convs mix no pixels, then a crop."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)  # (N, 4, 16, 16)
        return self.fc(features[:, :, :8, :8].flatten(1))  # (N, 3)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "gradient_shap",
                                    "deeplift", "smoothgrad", "occlusion", "guided_gradcam"])
def test_region_model_gets_no_attribution_elsewhere(method):
    torch.manual_seed(1)
    model = RegionModel().eval()
    x = torch.randn(1, 3, 16, 16)
    settings = attribution.AttributionSettings(method=method, layer="features", n_steps=8,
                                           n_samples=4, internal_batch_size=4, window=4, stride=4,
                                           baseline="noise")
    result = attribution.attribute(model, x, 0, settings)
    outside = result.values.copy()
    outside[:, :8, :8] = 0
    assert np.count_nonzero(outside) == 0
    assert np.abs(result.values[:, :8, :8]).sum() > 0  # and something inside


@pytest.mark.parametrize("baseline", ["black", "blurred", "noise"])
def test_integrated_gradients_completeness(baseline):
    torch.manual_seed(2)
    model = resnext.build_model(TINY)
    randomize_batchnorm(model, torch.Generator().manual_seed(2))
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    target = 4
    settings = attribution.AttributionSettings(method="integrated_gradients", n_steps=64,
                                           internal_batch_size=64, baseline=baseline)
    result = attribution.attribute(model, x, target, settings)
    reference = make_baseline(x, baseline, IMAGENET_MEAN, IMAGENET_STD)  # attribute's default
    with torch.no_grad():
        change = float(model(x)[0, target] - model(reference)[0, target])
    total = float(result.values.astype(np.float64).sum())
    assert abs(total - change) <= 0.05 * abs(change) + 1e-3
    assert result.convergence_delta == pytest.approx(total - change, abs=1e-3)


def test_internal_batching_does_not_change_integrated_gradients():
    torch.manual_seed(3)
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    one = attribution.attribute(model, x, 1, attribution.AttributionSettings(
        method="integrated_gradients", n_steps=12, internal_batch_size=12))
    batched = attribution.attribute(model, x, 1, attribution.AttributionSettings(
        method="integrated_gradients", n_steps=12, internal_batch_size=5))
    np.testing.assert_allclose(one.values, batched.values, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", list(attribution.METHODS))
def test_every_method_runs_on_a_resnext(method):
    torch.manual_seed(4)
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    result = attribution.attribute(model, x, 2, attribution.AttributionSettings(
        method=method, layer="layer3.0", **FAST))
    channels = 1 if method == "gradcam" else 3
    assert result.values.shape == (channels, 32, 32)
    assert result.pixel_map.shape == (32, 32)
    assert np.isfinite(result.values).all() and np.abs(result.values).sum() > 0
    if method == "gradcam":
        assert result.values.min() >= 0  # ReLU of Grad-CAM (Selvaraju et al., Eq. 2)
    assert (result.convergence_delta is not None) == (method in ("integrated_gradients", "deeplift"))
    # Captum's hooks are gone afterwards: the shared model is left as it was.
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


def test_stop_comes_at_the_next_forward_and_leaves_no_hooks():
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    pressed = []
    calls = []

    def report(fraction):
        calls.append(fraction)
        pressed.append(True)  # press Cancel after the first batch

    with pytest.raises(Stopped):
        attribution.attribute(model, x, 0, attribution.AttributionSettings(
            method="integrated_gradients", n_steps=16, internal_batch_size=2),
            report=report, should_stop=lambda: bool(pressed))
    assert len(calls) == 1
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                   for m in model.modules())


class LinearTwoClass(nn.Module):
    """logit_0 = sum(w * x), logit_1 = 0: removing pixel p lowers logit_0 by exactly w_p·x_p."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", weights)  # (1, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = (x * self.w).flatten(1).sum(dim=1)  # (N,)
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)  # (N, 2)


def test_deletion_curve_on_a_known_order():
    side, steps = 4, 4
    contribution = torch.arange(1, side * side + 1, dtype=torch.float32).view(side, side) / 20
    weights = contribution.expand(1, 3, side, side).clone() / 3  # each pixel adds `contribution`
    model = LinearTwoClass(weights)
    x = torch.ones(1, 3, side, side)
    best = attribution.deletion_curve(model, x, contribution.numpy(), target=0, steps=steps,
                                  batch_size=3)
    worst = attribution.deletion_curve(model, x, -contribution.numpy(), target=0, steps=steps)
    # Expected: after removing the k largest contributions, logit = sum of the rest.
    ordered = np.sort(contribution.numpy().reshape(-1))[::-1]
    logits = [ordered[k * side * side // steps:].sum() for k in range(steps + 1)]
    np.testing.assert_allclose(best.probabilities, 1 / (1 + np.exp(-np.array(logits))), rtol=1e-5)
    np.testing.assert_allclose(best.fractions, np.linspace(0, 1, steps + 1))
    assert best.probabilities[-1] == pytest.approx(0.5)  # all removed: logits tie
    assert np.all(np.diff(best.probabilities) <= 1e-7)
    assert best.auc < worst.auc
    assert best.auc == pytest.approx(np.trapezoid(best.probabilities, best.fractions))


def test_layer_choices_match_the_model():
    model = resnext.build_model(TINY)
    names = [name for name, _ in model.named_blocks()]
    assert attribution.layer_choices(TINY) == model.stage_names + names
    assert attribution.resolve_layer(model, "") is model.layer4
    with pytest.raises(ValueError, match="no layer"):
        attribution.resolve_layer(model, "layer9")


def test_occlusion_window_larger_than_the_image_is_clamped_with_its_stride():
    model = resnext.build_model(TINY).eval()
    settings = attribution.AttributionSettings(method="occlusion", window=200, stride=150,
                                           internal_batch_size=4)
    result = attribution.attribute(model, torch.randn(1, 3, 32, 32), 0, settings)
    # One window covering the whole image: every pixel gets the same attribution.
    assert np.allclose(result.values, result.values.flat[0])


@pytest.mark.parametrize("method", ["gradient_shap", "smoothgrad"])
def test_noise_methods_give_the_same_map_for_the_same_request(method):
    model = resnext.build_model(TINY).eval()
    x = torch.randn(1, 3, 32, 32)
    settings = attribution.AttributionSettings(method=method, **FAST)
    np.random.seed(5)
    torch.manual_seed(5)
    first = attribution.attribute(model, x, 1, settings).values
    assert np.random.uniform() == np.random.RandomState(5).uniform()  # numpy's state is back
    np.random.seed(6)
    torch.manual_seed(6)
    assert np.array_equal(first, attribution.attribute(model, x, 1, settings).values)
    assert not np.array_equal(first, attribution.attribute(model, x, 1, settings, seed=1).values)
