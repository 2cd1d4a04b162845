"""Batched attribution: a network that reads only a fixed region gets maps inside it; the
batch gives the same maps as image by image; Integrated Gradients keeps completeness."""

import numpy as np
import pytest
import torch
from torch import nn

import resnext
from resnext.explain.batch import (
    DEFAULT_ROWS,
    METHOD_ROWS,
    BatchSettings,
    attribute_batch,
    resolve_row,
)
from resnext.explain.baselines import make_baseline
from resnext.explain.metrics import energy_in_mask
from resnext.explain.stopping import Stopped
from tests.conftest import randomize_batchnorm

SIDE, TOP, LEFT, SIZE = 16, 4, 6, 6  # the region: rows 4..9, columns 6..11
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


class RegionNet(nn.Module):
    """Sees only a fixed window: the input is multiplied by the window's indicator, then a
    bias-free conv + ReLU ("layer1", the Grad-CAM layer), summed over space, and a linear
    layer gives 3 logits. Outside the window the gradient is exactly 0."""

    stage_names = ["layer1"]

    def __init__(self, linear: bool = False):
        super().__init__()
        window = torch.zeros(1, 1, SIDE, SIDE)
        window[..., TOP:TOP + SIZE, LEFT:LEFT + SIZE] = 1.0
        self.register_buffer("window", window)
        generator = torch.Generator().manual_seed(0)
        self.layer1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),
                                    nn.Identity() if linear else nn.ReLU())
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            self.layer1[0].weight.copy_(torch.randn(4, 3, 3, 3, generator=generator))
            self.fc.weight.copy_(torch.randn(3, 4, generator=generator))
            self.fc.bias.zero_()

    def forward(self, x):
        features = self.layer1(x * self.window)
        return self.fc(features.sum(dim=(2, 3)) / SIZE ** 2)


def region_masks(n, margin=0):
    masks = torch.zeros(n, SIDE, SIDE, dtype=torch.bool)
    masks[:, TOP - margin:TOP + SIZE + margin, LEFT - margin:LEFT + SIZE + margin] = True
    return masks


def images_and_targets(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, SIDE, SIDE, generator=generator),
            torch.arange(n) % 3)


def test_a_network_that_reads_a_fixed_region_gets_maps_inside_it():
    model = RegionNet().eval()
    images, targets = images_and_targets(6)
    masks = region_masks(6)
    # Occlusion patches aligned with the window (2 px, stride 2) never straddle its edge.
    settings = BatchSettings(n_steps=8, n_samples=4, occlusion_window=2, occlusion_stride=2)
    for row in DEFAULT_ROWS:
        maps = attribute_batch(model, images, targets, row, settings=settings, mean=MEAN, std=STD)
        assert maps.shape == (6, SIDE, SIDE) and maps.dtype == torch.float32
        # Grad-CAM sees the conv's output, which spills one pixel (its 3x3 kernel, corners
        # included) past the window; gradients and perturbations cannot leave it at all.
        region = region_masks(6, 1) if row in ("gradcam", "guided_gradcam") else masks
        energy = energy_in_mask(maps, region)
        assert energy.min() > 0.999, (row, energy)
        if row not in ("gradcam", "guided_gradcam"):
            assert maps[~masks].abs().max() == 0, row
    random_maps = attribute_batch(model, images, targets, "random")
    share = masks.float().mean().item()
    assert abs(energy_in_mask(random_maps, masks).mean() - share) < 0.05


def test_batched_maps_equal_image_by_image_maps():
    cfg = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=8, stage_blocks=(1, 1),
                                num_classes=5, stem="cifar", base_planes=8)
    model = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0)).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    images, _ = images_and_targets(3, seed=2)
    targets = torch.tensor([4, 0, 3])
    settings = BatchSettings(n_steps=4, occlusion_window=4, occlusion_stride=4)
    for row in ("saliency", "integrated_gradients_black", "integrated_gradients_blurred",
                "deeplift", "occlusion", "gradcam", "guided_gradcam"):
        batched = attribute_batch(model, images, targets, row, settings=settings, mean=MEAN,
                                  std=STD, max_batch=64)
        one_by_one = torch.cat([
            attribute_batch(model, images[i:i + 1], targets[i:i + 1], row, settings=settings,
                            mean=MEAN, std=STD, max_batch=64) for i in range(3)])
        scale = one_by_one.abs().max().item()
        assert scale > 0, row
        assert torch.allclose(batched, one_by_one, atol=1e-4 * scale), row
        if row in ("integrated_gradients_black", "occlusion"):
            # Smaller forwards (IG: chunks of max_batch // n_steps = 2 images; Occlusion:
            # 8 // 3 = 2 patches of each image per forward) give the same maps too.
            chunked = attribute_batch(model, images, targets, row, settings=settings,
                                      mean=MEAN, std=STD, max_batch=8)
            assert torch.allclose(chunked, batched, atol=1e-4 * scale), row


@pytest.mark.parametrize("baseline", ["black", "blurred", "mean"])
def test_integrated_gradients_completeness_on_a_linear_network(baseline):
    # For a network linear in its input, IG is exact: sum of attributions = f(x) - f(baseline)
    # for each image and its own target (Sundararajan et al. 2017, Prop. 1).
    model = RegionNet(linear=True).eval()
    images, targets = images_and_targets(4, seed=5)
    maps = attribute_batch(model, images, targets, "integrated_gradients", baseline=baseline,
                           settings=BatchSettings(n_steps=4), mean=MEAN, std=STD)
    reference = make_baseline(images, baseline, MEAN, STD)
    with torch.no_grad():
        rows = torch.arange(4)
        change = model(images)[rows, targets] - model(reference)[rows, targets]
    assert torch.allclose(maps.sum(dim=(1, 2)), change, atol=1e-4)


def test_black_baseline_is_black_after_normalisation():
    images = torch.zeros(1, 3, 4, 4)
    black = make_baseline(images, "black", MEAN, STD)
    assert torch.allclose(black * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1),
                          torch.zeros(1, 3, 4, 4), atol=1e-6)
    with pytest.raises(ValueError, match="mean and std"):
        make_baseline(images, "black", None, None)


def test_rows_names_and_bad_input():
    assert len(DEFAULT_ROWS) == 10 and "random" in METHOD_ROWS
    assert {METHOD_ROWS[r][0] for r in DEFAULT_ROWS} == {
        "saliency", "integrated_gradients", "gradient_shap", "deeplift", "smoothgrad",
        "occlusion", "gradcam", "guided_gradcam"}
    assert resolve_row("integrated_gradients", "blurred") == ("integrated_gradients", "blurred")
    model = RegionNet().eval()
    images, targets = images_and_targets(2)
    with pytest.raises(ValueError, match="unknown method 'lime'"):
        attribute_batch(model, images, targets, "lime")
    with pytest.raises(ValueError, match="baseline"):
        attribute_batch(model, images, targets, "integrated_gradients", baseline="white")
    with pytest.raises(ValueError, match="2 images but 3 targets"):
        attribute_batch(model, images, torch.tensor([0, 1, 2]), "saliency")
    with pytest.raises(ValueError, match="n_steps"):
        attribute_batch(model, images, targets, "saliency", settings=BatchSettings(n_steps=1))
    with pytest.raises(Stopped):
        attribute_batch(model, images, targets, "saliency", should_stop=lambda: True)


def test_noise_methods_are_seeded_and_leave_the_global_rng_alone():
    model = RegionNet().eval()
    images, targets = images_and_targets(3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = attribute_batch(model, images, targets, "smoothgrad", seed=7, settings=BatchSettings(n_samples=3))
    assert torch.equal(torch.rand(1), expected_next)
    again = attribute_batch(model, images, targets, "smoothgrad", seed=7, settings=BatchSettings(n_samples=3))
    assert torch.equal(first, again)
    assert model.training is False
    model.train()
    attribute_batch(model, images, targets, "saliency")
    assert model.training is True  # eval mode only while attributing


def test_gradient_shap_is_seeded_whatever_numpys_generator_holds():
    """Captum's GradientShap draws its points on the path and its references from numpy's
    global generator: seeded for the call, put back after."""
    model = RegionNet().eval()
    images, targets = images_and_targets(3)
    settings = BatchSettings(n_samples=4)
    np.random.seed(1)
    first = attribute_batch(model, images, targets, "gradient_shap", seed=2, settings=settings,
                            mean=MEAN, std=STD)
    assert np.random.uniform() == np.random.RandomState(1).uniform()  # numpy's state is back
    np.random.seed(99)
    again = attribute_batch(model, images, targets, "gradient_shap", seed=2, settings=settings,
                            mean=MEAN, std=STD)
    assert torch.equal(first, again)
    other = attribute_batch(model, images, targets, "gradient_shap", seed=3, settings=settings,
                            mean=MEAN, std=STD)
    assert not torch.equal(first, other)


def test_maps_are_numpy_friendly():
    model = RegionNet().eval()
    images, targets = images_and_targets(2)
    maps = attribute_batch(model, images, targets, "gradcam")
    assert isinstance(maps.numpy(), np.ndarray) and (maps >= 0).all()


def test_private_copy_leaves_other_requests_hooks_behind():
    from resnext.explain.batch import private_copy

    model = RegionNet().eval()

    def cancelled(module, inputs):
        raise RuntimeError("another request's cancel hook")

    handle = model.layer1.register_forward_pre_hook(cancelled)
    copy = private_copy(model)
    images, targets = images_and_targets(2)
    maps = attribute_batch(copy, images, targets, "saliency")  # the hook did not come along
    assert maps.shape == (2, SIDE, SIDE)
    with pytest.raises(RuntimeError, match="cancel hook"):
        model(images)  # the original keeps it
    handle.remove()
    assert torch.equal(copy.layer1[0].weight, model.layer1[0].weight)
    assert copy.layer1[0].weight.data_ptr() != model.layer1[0].weight.data_ptr()
