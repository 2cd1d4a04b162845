"""Training recipes: optimiser, learning-rate schedule and batched augmentation.

- "seed": pytorch-cifar100's recipe, the one the seed blog's models were trained with
  (github.com/weiaicunzai/pytorch-cifar100 at 11d8418, train.py, utils.py,
  conf/global_settings.py), step for step: SGD lr 0.1, momentum 0.9, weight decay 5e-4,
  batch 128; epoch 1 is a linear warm-up (utils.py's WarmUpLR: batch i of n at
  0.1 * i / (n + 1e-8), so the first batch trains at 0); from epoch 2 the rate is
  0.1 * 0.2 ** (milestones passed by the 1-based epoch), its milestones [60, 120, 160] of 200
  epochs kept as 30 %, 60 % and 80 % of the epochs: epochs 2-59 at 0.1, 60-119 at 0.02,
  120-159 at 0.004, 160-200 at 0.0008. Random crop with 4-pixel zero padding, horizontal
  flip, and every image rotated by U(-15, 15) degrees with nearest resampling
  (torchvision's RandomRotation(15)). Networks keep PyTorch's default initialisation
  (`init="pytorch"`), as its models do.
- "quick": for runs of a few epochs: AdamW (lr 3e-3, decoupled weight decay 0.05;
  Loshchilov & Hutter 2019) with a one-cycle schedule (linear warm-up over the first 15 %
  of steps from lr/25 to lr, then cosine down to 0; Smith & Topin 2017), crop with padding
  and flip. On shapes, a 90 k-parameter network left its near-chance start about twice as
  fast as with SGD (lr 0.1, momentum 0.9): 51 % against 40 % test accuracy after 188
  steps at batch 64. Networks get the library's Kaiming init (`init="kaiming"`).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from . import limits

RECIPE_NAMES = ("seed", "quick")


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "sgd" | "adamw"
    lr: float
    momentum: float
    weight_decay: float
    nesterov: bool
    schedule: str  # "multistep" | "onecycle"
    warmup: float  # "multistep": epochs of warm-up; "onecycle": fraction of all steps
    milestones: tuple[float, ...]  # "multistep": fractions of the epochs
    gamma: float
    padding: int
    flip: bool
    rotation: float  # degrees; 0 = none; else every image, U(-r, r), nearest resampling
    # How build_model initialises the network: "kaiming" (the library's: He et al. fan_out
    # normal convs, BN as identity) or "pytorch" (each module's own reset_parameters).
    init: str = "kaiming"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        return data


SEED = Recipe(name="seed", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False,
              schedule="multistep", warmup=1.0, milestones=(0.3, 0.6, 0.8), gamma=0.2,
              padding=4, flip=True, rotation=15.0, init="pytorch")
QUICK = Recipe(name="quick", optimizer="adamw", lr=3e-3, momentum=0.9, weight_decay=0.05,
               nesterov=False, schedule="onecycle", warmup=0.15, milestones=(), gamma=1.0,
               padding=4, flip=True, rotation=0.0)
RECIPES = {"seed": SEED, "quick": QUICK}


def recipe_for(name: "str | Recipe", lr: float | None = None) -> Recipe:
    """A recipe by name (or a Recipe of your own), with `lr` as its peak rate if given."""
    if isinstance(name, Recipe):
        recipe = name
    elif name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPE_NAMES)}, got {name!r}")
    else:
        recipe = RECIPES[name]
    if lr is not None:
        recipe = Recipe(**{**asdict(recipe), "lr": limits.learning_rate("lr", lr)})
    return recipe


def learning_rate(recipe: Recipe, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The rate for global step `step` (0-based) of `epochs * steps_per_epoch`."""
    if recipe.schedule == "onecycle":
        return _one_cycle(recipe, step, epochs * steps_per_epoch)
    return _warm_multistep(recipe, step, steps_per_epoch, epochs)


def _one_cycle(recipe: Recipe, step: int, total: int) -> float:
    warm = max(1, round(recipe.warmup * total))
    if step < warm:
        start = recipe.lr / 25
        return start + (recipe.lr - start) * (step + 1) / warm
    progress = (step - warm + 1) / max(1, total - warm)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def milestone_epochs(recipe: Recipe, epochs: int) -> list[int]:
    """The recipe's milestones as 1-based epochs: [60, 120, 160] for "seed" over 200."""
    return [round(fraction * epochs) for fraction in recipe.milestones]


def _warm_multistep(recipe: Recipe, step: int, steps_per_epoch: int, epochs: int) -> float:
    """pytorch-cifar100's rate, with the same arithmetic, so that it is equal to the float."""
    warm_steps = round(recipe.warmup * steps_per_epoch)
    if step < warm_steps:
        # utils.py, WarmUpLR.get_lr: base_lr * last_epoch / (total_iters + 1e-8), where
        # last_epoch counts the batches already trained (train.py steps it after each batch
        # of the warm-up epochs): batch 0 trains at 0, batch n - 1 at lr * (n - 1) / n.
        return recipe.lr * step / (warm_steps + 1e-8)
    # train.py calls train_scheduler.step(epoch) with the 1-based epoch before each epoch
    # after the warm-up; MultiStepLR's closed form is then
    # base_lr * gamma ** bisect_right(milestones, epoch): milestone m drops epoch m itself.
    epoch = step // steps_per_epoch + 1
    passed = bisect.bisect_right(sorted(milestone_epochs(recipe, epochs)), epoch)
    return recipe.lr * recipe.gamma ** passed


def optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr,
                                 weight_decay=recipe.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)


def augmentation(recipe: Recipe, image_size: int) -> torch.nn.Module:
    """The recipe's augmentation, on whole batches (kornia), for images in [0, 1].

    Rotation is torchvision's RandomRotation(r) as pytorch-cifar100's utils.py uses it on
    PIL images: every image (kornia's default would skip half, p = 0.5), by U(-r, r)
    degrees, nearest resampling (torchvision's default; kornia's is bilinear), corners
    filled with 0.
    """
    import kornia.augmentation as K

    steps: list[torch.nn.Module] = []
    if recipe.padding:
        steps.append(K.RandomCrop((image_size, image_size), padding=recipe.padding))
    if recipe.flip:
        steps.append(K.RandomHorizontalFlip())
    if recipe.rotation:
        steps.append(K.RandomRotation(recipe.rotation, resample="nearest", p=1.0))
    return torch.nn.Sequential(*steps)
