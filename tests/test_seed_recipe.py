"""The "seed" recipe against pytorch-cifar100's train.py, step for step: its learning rate,
its rotation and its initialisation (github.com/weiaicunzai/pytorch-cifar100 at 11d8418)."""

import math
import warnings

import pytest
import torch

import resnext
from resnext.train import recipes
from resnext.train.recipes import augmentation, learning_rate, recipe_for

CIFAR_STEPS = 391  # len(DataLoader(CIFAR-100 train, batch_size=128)): 390 full + 1 of 80


class _LinearWarmUp(torch.optim.lr_scheduler.LRScheduler):
    """Written here from pytorch-cifar100's description of its warm-up: the rate of the k-th
    scheduler state is base_lr * k / (total + 1e-8)."""

    def __init__(self, optimizer, total):
        self.total = total
        super().__init__(optimizer)

    def get_lr(self):
        return [base * self.last_epoch / (self.total + 1e-8) for base in self.base_lrs]


def pytorch_cifar100_rates(epochs, steps_per_epoch, milestones, warm=1, lr=0.1):
    """The rate of every batch as train.py's loops set it, on a dummy SGD optimiser."""
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([weight], lr=lr, momentum=0.9, weight_decay=5e-4)
    train_scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.2)
    warmup_scheduler = _LinearWarmUp(opt, steps_per_epoch * warm)
    rates = []
    with warnings.catch_warnings():
        # step(epoch) is deprecated in PyTorch, and it is what train.py calls.
        warnings.simplefilter("ignore", UserWarning)
        for epoch in range(1, epochs + 1):
            if epoch > warm:
                train_scheduler.step(epoch)
            for _ in range(steps_per_epoch):
                rates.append(opt.param_groups[0]["lr"])  # the rate this batch trains at
                # (train.py's optimizer.step() comes here; it changes no rate, and 78,200 of
                # them would take seconds, so the schedulers alone are stepped)
                if epoch <= warm:
                    warmup_scheduler.step()
    return rates


def test_seed_rate_is_pytorch_cifar100s_at_every_step_of_200_epochs():
    recipe = recipe_for("seed")
    expected = pytorch_cifar100_rates(200, CIFAR_STEPS, [60, 120, 160])
    ours = [learning_rate(recipe, step, CIFAR_STEPS, 200) for step in range(200 * CIFAR_STEPS)]
    assert len(ours) == len(expected) == 78_200
    differing = [step for step, (a, b) in enumerate(zip(ours, expected)) if a != b]
    assert not differing, (differing[:5], [ours[s] for s in differing[:5]])
    at = lambda epoch, batch=0: ours[(epoch - 1) * CIFAR_STEPS + batch]  # 1-based epoch
    assert at(1, 0) == 0.0 and at(1, 390) == pytest.approx(0.1 * 390 / 391)
    assert [at(e) for e in (2, 59, 60, 119, 120, 159, 160, 200)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.02, 0.004, 0.004, 0.0008, 0.0008])


@pytest.mark.parametrize("epochs,steps", [(10, 7), (3, 5), (1, 4)])
def test_seed_rate_of_a_short_run_scales_its_milestones(epochs, steps):
    recipe = recipe_for("seed")
    milestones = [round(f * epochs) for f in (0.3, 0.6, 0.8)]
    assert recipes.milestone_epochs(recipe, epochs) == milestones
    expected = pytorch_cifar100_rates(epochs, steps, milestones)
    assert [learning_rate(recipe, s, steps, epochs) for s in range(epochs * steps)] == expected
    if epochs == 10:  # [3, 6, 8]: epoch 3 is the first at 0.02
        assert learning_rate(recipe, 2 * steps, steps, 10) == pytest.approx(0.02)


def test_seed_rate_with_another_peak():
    recipe = recipe_for("seed", lr=0.05)
    expected = pytorch_cifar100_rates(10, 6, [3, 6, 8], lr=0.05)
    assert [learning_rate(recipe, s, 6, 10) for s in range(60)] == expected


def test_quick_recipe_is_unchanged():
    quick = recipe_for("quick")
    assert (quick.optimizer, quick.schedule, quick.lr, quick.warmup, quick.rotation,
            quick.init) == ("adamw", "onecycle", 3e-3, 0.15, 0.0, "kaiming")
    # The one-cycle formula as it was: linear from lr/25 over 15 %, then cosine to 0.
    for step in (0, 5, 14, 15, 50, 99):
        if step < 15:
            want = 3e-3 / 25 + (3e-3 - 3e-3 / 25) * (step + 1) / 15
        else:
            want = 3e-3 * 0.5 * (1 + math.cos(math.pi * (step - 14) / 85))
        assert learning_rate(quick, step, 10, 10) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert [type(m).__name__ for m in augmentation(quick, 32)] == [
        "RandomCrop", "RandomHorizontalFlip"]


def _distinct_images(n, side, seed=0):
    """Images whose pixel values are all different (and none 0): nearest resampling can only
    copy them, bilinear mixes them into new values."""
    values = torch.randperm(n * 3 * side * side, generator=torch.Generator().manual_seed(seed))
    return (values.float() + 1) / (n * 3 * side * side + 1)


def test_seed_rotation_turns_every_image_with_nearest_resampling():
    rotation = augmentation(recipe_for("seed"), 32)[-1]
    assert type(rotation).__name__ == "RandomRotation" and rotation.p == 1.0
    torch.manual_seed(0)
    images = _distinct_images(256, 32).view(256, 3, 32, 32)
    with torch.no_grad():
        rotated = rotation(images)
    angles = rotation._params["degrees"]
    assert bool(rotation._params["batch_prob"].all())  # every image drew a rotation
    assert angles.shape == (256,) and bool((angles.abs() <= 15).all())
    # U(-15, 15): both signs, spread over the range.
    assert angles.min() < -12 and angles.max() > 12 and abs(float(angles.mean())) < 2
    # Nearest: every output value is an input value of that image, or the 0 of the corners.
    for image, out in zip(images, rotated):
        assert bool(torch.isin(out[out != 0], image).all())
    changed = (rotated != images).flatten(1).any(1)
    # Nearest resampling may leave a 32-pixel image as it was below about 2 degrees (no
    # pixel moves by half a pixel or more); beyond, every image changes. Kornia's default
    # p = 0.5 leaves about half of them as they were (0.49 of this batch).
    assert bool(changed[angles.abs() > 2].all())
    assert changed.float().mean() > 0.75, changed.float().mean()  # 0.87 here


def test_seed_augmentation_copies_pixels_only():
    augment = augmentation(recipe_for("seed"), 32)
    assert [type(m).__name__ for m in augment] == [
        "RandomCrop", "RandomHorizontalFlip", "RandomRotation"]
    assert augment[0].flags["padding"] == 4 and augment[-1].p == 1.0
    torch.manual_seed(1)
    images = _distinct_images(32, 32, seed=1).view(32, 3, 32, 32)
    with torch.no_grad():
        out = augment(images)
    assert out.shape == images.shape
    for image, result in zip(images, out):
        assert bool(torch.isin(result[result != 0], image).all())


def _uniform_bound(weight):
    fan_in = weight[0].numel()
    gain = math.sqrt(2.0 / (1 + 5))  # kaiming_uniform_(a=sqrt(5)): leaky_relu gain
    return gain * math.sqrt(3.0 / fan_in)  # = 1 / sqrt(fan_in)


def _kurtosis(weight):
    weight = weight.double().flatten()
    return float((weight ** 4).mean() / (weight ** 2).mean() ** 2)


def test_seed_recipe_builds_with_pytorchs_default_init():
    assert recipe_for("seed").init == "pytorch"
    cfg = resnext.PRESETS["seed_resnext50"]
    model = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0),
                                init=recipe_for("seed").init)
    kaiming = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0))
    for name in ("conv1", "layer1.0.conv1", "layer2.0.conv2", "layer4.2.conv3",
                 "layer3.0.downsample.0"):
        weight = model.get_submodule(name).weight.detach()
        bound = _uniform_bound(weight)
        # U(-b, b), b = 1/sqrt(fan_in): inside the bound, filling it, std b/sqrt(3), and a
        # uniform's kurtosis E[w^4]/E[w^2]^2 = 1.8 (a normal's is 3).
        assert float(weight.abs().max()) <= bound and float(weight.abs().max()) > 0.9 * bound
        assert float(weight.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert _kurtosis(weight) == pytest.approx(1.8, abs=0.25)
        # Not Kaiming normal fan_out (std sqrt(2 / fan_out)), which the "kaiming" build is.
        fan_out = weight.shape[0] * weight[0, 0].numel()
        assert float(weight.std()) != pytest.approx(math.sqrt(2 / fan_out), rel=0.3)
        other = kaiming.get_submodule(name).weight.detach()
        assert float(other.std()) == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
        assert _kurtosis(other) == pytest.approx(3.0, abs=0.6)
    bn = model.layer1[0].bn1
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any()
    again = resnext.build_model(cfg, generator=torch.Generator().manual_seed(0), init="pytorch")
    assert torch.equal(again.layer3[0].conv2.weight, model.layer3[0].conv2.weight)
    with pytest.raises(ValueError, match="init must be one of kaiming, pytorch"):
        resnext.build_model(cfg, init="xavier")


def test_fit_with_the_seed_recipe_uses_its_init(monkeypatch):
    import resnext.model
    from resnext import data, train

    built = []
    real = resnext.model.build_model

    def spy(*args, **kwargs):
        built.append(kwargs.get("init"))
        return real(*args, **kwargs)

    monkeypatch.setattr(resnext.model, "build_model", spy)
    tiny = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=8, base_planes=8,
                                 stage_blocks=(1,), stem="cifar", num_classes=6)
    pair = data.shapes(n_train=16, n_test=8, image_size=16, seed=0)
    result = train.fit(tiny, pair, epochs=1, batch_size=8, recipe="seed")
    assert built == ["pytorch"] and len(result.history) == 1
    assert result.config["recipe"]["init"] == "pytorch"
    train.fit(tiny, pair, epochs=1, batch_size=8, recipe="quick")
    assert built == ["pytorch", "kaiming"]
