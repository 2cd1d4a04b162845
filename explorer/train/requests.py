"""What a training run will be, before it starts: the request, its limits, the datasets on
offer, a preview of the training images and the engine's estimate of time and memory.

The training itself runs in a child process (`jobs`), never in the app's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import resnext
from resnext import ResNeXtConfig
from resnext.data.registry import DATASETS, PATH_SEPARATOR, DatasetEntry, class_folders
from resnext.train import limits
from resnext.validation import whole_number

from ..selection import Selection
from ..shared import formatting as fmt
from ..shared.drawing import draw_outline, enlarge, to_uint8

# The datasets on offer: the data registry's, each image folder of the data directory as
# "folder:NAME" (the registry's entry that takes a path).
FOLDERS = next(entry for entry in DATASETS.values() if entry.takes_path)
FOLDER_PREFIX = FOLDERS.name + PATH_SEPARATOR
# The Train tab's controls (and the API) take exactly what the library's training takes,
# `resnext.train.limits`; these are only where a control starts.
DEFAULTS = {"data": "shapes", "image_size": 32, "train_size": 4000, "test_size": 500,
            "epochs": 3, "batch_size": 64, "recipe": "quick", "seed": 0}
# Over this the Train tab says the run is long and offers a smaller variant (issue: "say
# over 15 minutes on this device").
LONG_RUN_SECONDS = 15 * 60
PREVIEW_IMAGES = 12


@dataclass(frozen=True)
class TrainRequest:
    """One training run as the Train tab (or /train_start) asks for it."""

    config: ResNeXtConfig
    data: str
    image_size: int
    train_size: int
    test_size: int
    epochs: int
    batch_size: int
    recipe: str
    lr: float | None
    seed: int
    device: str
    download: bool = False
    compile: bool = False  # train through torch.compile (the estimate says whether it pays)

    @property
    def dataset(self) -> DatasetEntry:
        """The data registry's entry of the dataset."""
        return dataset_entry(self.data)

    def argv(self, run_dir: Path, data_dir: Path) -> list[str]:
        """The `python -m resnext.train` arguments of this request."""
        args = ["--config", json.dumps(self.config.to_dict()), "--data", self.data_argument(
            data_dir), "--data-root", str(data_dir), "--epochs", str(self.epochs),
            "--batch-size", str(self.batch_size), "--recipe", self.recipe, "--seed",
            str(self.seed), "--device", self.device, "--train-size", str(self.train_size),
            "--test-size", str(self.test_size), "--out", str(run_dir), "--quiet"]
        if not self.dataset.fixed_image_size:
            args += ["--image-size", str(self.image_size)]
        if self.lr is not None:
            args += ["--lr", repr(self.lr)]
        if self.download:
            args.append("--download")
        if self.compile:
            args.append("--compile")
        return args

    def data_argument(self, data_dir: Path) -> str:
        if self.data.startswith(FOLDER_PREFIX):
            return FOLDER_PREFIX + str(folder_path(data_dir, self.data[len(FOLDER_PREFIX):]))
        return self.data

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "data": self.data, "image_size": self.image_size,
                "train_size": self.train_size, "test_size": self.test_size,
                "epochs": self.epochs, "batch_size": self.batch_size, "recipe": self.recipe,
                "lr": self.lr, "seed": self.seed, "device": self.device,
                "download": self.download, "compile": self.compile}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainRequest":
        """A request written by `to_dict` (a queued run's request.json, after a restart)."""
        values = {name: data[name] for name in (
            "data", "image_size", "train_size", "test_size", "epochs", "batch_size", "recipe",
            "lr", "seed", "device")}
        return cls(config=ResNeXtConfig.from_dict(data["config"]),
                   download=bool(data.get("download", False)),
                   compile=bool(data.get("compile", False)), **values)


def dataset_choices(data_dir: Path) -> list[tuple[str, str]]:
    """(label, value) of every dataset on offer: the built-in ones, then each image folder
    found directly under the data directory (a folder of class folders)."""
    choices = [(entry.description, entry.name) for entry in DATASETS.values()
               if not entry.takes_path]
    for name in image_folders(data_dir):
        choices.append((f"folder: {name}", FOLDER_PREFIX + name))
    return choices


def image_folders(data_dir: Path) -> list[str]:
    """Names of the folders under `data_dir` that hold at least two class folders."""
    if not Path(data_dir).is_dir():
        return []
    found = []
    for child in sorted(Path(data_dir).iterdir()):
        if child.is_dir() and not child.name.startswith(".") and len(class_folders(child)) >= 2:
            found.append(child.name)
    return found


def folder_path(data_dir: Path, name: str) -> Path:
    """The path of an offered image folder. Only a folder directly under the data directory
    is accepted: the page never takes a free path to a folder on the server."""
    if name not in image_folders(data_dir):
        raise ValueError(f"no image folder {name!r} in the data directory; offered: "
                         f"{', '.join(image_folders(data_dir)) or 'none'}")
    return Path(data_dir) / name


def make_request(selection: Selection, data: str, image_size: Any, train_size: Any,
                 test_size: Any, epochs: Any, batch_size: Any, recipe: str, lr: Any, seed: Any,
                 device: str, data_dir: Path, download: bool = False,
                 compile: bool = False) -> TrainRequest:
    """Check every value under its control's name and fit the network's head to the data."""
    from resnext.train import RECIPE_NAMES

    offered = [value for _, value in dataset_choices(data_dir)]
    if data not in offered:
        raise ValueError(f"dataset must be one of {', '.join(offered)}, got {data!r}")
    if recipe not in RECIPE_NAMES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPE_NAMES)}, got {recipe!r}")
    lr_value = parse_learning_rate(lr)
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {device!r}")
    entry = dataset_entry(data)
    side = entry.image_size if entry.fixed_image_size else whole_number(
        "image size", image_size, *limits.IMAGE_SIZE_RANGE)
    classes = num_classes(data, data_dir)
    config = selection.config.replace(num_classes=classes)
    return TrainRequest(
        config=config, data=data, image_size=side,
        train_size=whole_number("training images", train_size, *limits.TRAIN_IMAGES_RANGE),
        test_size=whole_number("test images", test_size, *limits.TEST_IMAGES_RANGE),
        epochs=whole_number("epochs", epochs, *limits.EPOCHS_RANGE),
        batch_size=whole_number("batch size", batch_size, *limits.BATCH_RANGE),
        recipe=recipe, lr=lr_value, seed=whole_number("seed", seed, *limits.SEED_RANGE),
        device=device, download=bool(download), compile=bool(compile))


def parse_learning_rate(lr: Any) -> float | None:
    """The learning rate box: empty (None) is the recipe's own; else a number in
    limits.LR_RANGE."""
    if lr is None or (isinstance(lr, str) and not lr.strip()):
        return None
    value = lr
    if isinstance(lr, str):
        try:
            value = float(lr.strip())
        except ValueError:
            value = lr
    return limits.learning_rate("learning rate", value, " (or empty for the recipe's own)", lr)


def learning_rate_note(recipe: str) -> str:
    from resnext.train import RECIPES

    if recipe not in RECIPES:
        return "empty: the recipe's own"
    return f"empty: the recipe's own ({RECIPES[recipe].lr:g} for {recipe})"


def dataset_entry(data: str) -> DatasetEntry:
    """The registry's entry of an offered dataset ("shapes", "folder:pets", ...)."""
    name = data.partition(PATH_SEPARATOR)[0] if data.startswith(FOLDER_PREFIX) else data
    return DATASETS[name]


def downloadable(data: str) -> bool:
    """Whether the dataset can be downloaded when missing (the tab's download box)."""
    return isinstance(data, str) and data in DATASETS and DATASETS[data].downloadable


def num_classes(data: str, data_dir: Path) -> int:
    entry = dataset_entry(data)
    if entry.num_classes is not None:
        return entry.num_classes
    return len(class_folders(folder_path(data_dir, data[len(FOLDER_PREFIX):])))


def load_dataset(request: TrainRequest, data_dir: Path, train_size: int | None = None,
                 test_size: int | None = None) -> Any:
    """The request's dataset (optionally fewer images: a preview needs a dozen), made as
    the training process will make it: the data registry's spec of the same arguments."""
    from resnext.data import registry

    spec = registry.request_spec(
        request.data_argument(data_dir), root=data_dir, image_size=request.image_size,
        n_train=request.train_size if train_size is None else train_size,
        n_test=request.test_size if test_size is None else test_size, seed=request.seed)
    return registry.load(spec)


def preview(request: TrainRequest, data_dir: Path) -> list[tuple[np.ndarray, str]]:
    """A dozen training images with their class names; for shapes, the object outlined
    (yellow) and, with the shortcut, the marker outlined (cyan)."""
    pair = load_dataset(request, data_dir, train_size=PREVIEW_IMAGES, test_size=1)
    split = pair.train
    items = []
    for index in range(min(PREVIEW_IMAGES, len(split))):
        image, label = split[index]
        picture = to_uint8(image)
        if split.masks is not None:
            picture = draw_outline(picture, split.masks[index].numpy())
        if split.marker_masks is not None:
            picture = draw_outline(picture, split.marker_masks[index].numpy(), (0, 255, 255))
        items.append((enlarge(picture), pair.classes[int(label)]))
    return items


@dataclass(frozen=True)
class Forecast:
    """The engine's estimate in words and numbers, and a smaller variant when it is long."""

    seconds: float
    peak_bytes: int
    text: str
    smaller: Selection | None  # offered, never applied without the user's say


class _Sized:
    """What `resnext.train.estimate` reads of a dataset: split sizes and the image side."""

    def __init__(self, n_train: int, n_test: int, image_size: int) -> None:
        self.train, self.test, self.image_size = range(n_train), range(n_test), image_size


def _sizes(request: TrainRequest, data_dir: Path) -> tuple[int, int]:
    entry = request.dataset
    if entry.generated:
        return request.train_size, request.test_size
    if entry.sizes is not None:
        full_train, full_test = entry.sizes
    else:  # a folder: its files, split as image_folder splits them by default
        root = folder_path(data_dir, request.data[len(FOLDER_PREFIX):])
        files = sum(1 for path in root.rglob("*") if path.is_file())
        full_test = round(files * entry.options["test_fraction"])
        full_train = files - full_test
    return min(full_train, request.train_size), min(full_test, request.test_size)


def forecast(request: TrainRequest, data_dir: Path) -> Forecast:
    """Time and peak memory from the exact MACs and a few measured steps, before starting."""
    from resnext.train import estimate

    from ..shared.memory import check_module_count

    check_module_count(request.config, "The training estimate")
    n_train, n_test = _sizes(request, data_dir)
    device = "cpu" if request.device == "mps" else request.device
    guess = estimate(request.config, _Sized(n_train, n_test, request.image_size),
                     request.epochs, request.batch_size, device, recipe=request.recipe,
                     compile=request.compile)
    text = estimate_text(request, guess, n_train, n_test)
    smaller = None
    if guess.seconds > LONG_RUN_SECONDS:
        smaller = smaller_variant(Selection(request.config, request.image_size))
        if smaller is not None:
            ratio = (resnext.complexity(smaller.config, request.image_size).macs
                     / resnext.complexity(request.config, request.image_size).macs)
            text += (f"\n\n**That is long.** {smaller.config.name} (fewer blocks, a narrower "
                     f"base) would take about {fmt.duration(guess.seconds * ratio)} at the same "
                     f"rate. Nothing changes unless you press *Use the smaller variant*.")
        else:
            text += "\n\n**That is long.** Fewer epochs or images would shorten it."
    return Forecast(guess.seconds, guess.peak_bytes, text, smaller)


def estimate_text(request: TrainRequest, guess: Any, n_train: int, n_test: int) -> str:
    """The estimate's paragraph: the time and memory, how they were measured, the machine's
    load when it is busy, and whether torch.compile pays for this run."""
    where = "the CPU" if request.device == "cpu" else request.device
    text = (f"**Estimate:** {guess.phrase} on {where} for {request.epochs} epoch(s) of "
            f"{n_train:,} training and {n_test:,} test images at {request.image_size} px "
            f"(from {guess.measured_batch}-image training steps of this run's recipe, "
            f"augmentation included, measured just now).")
    if guess.busy_note:
        text += f"\n\n**Note:** {guess.busy_note}."
    if guess.compile is not None:
        text += f"\n\n{guess.compile.phrase[0].upper()}{guess.compile.phrase[1:]}."
    return text


def smaller_variant(selection: Selection) -> Selection | None:
    """One block per stage and base width 16 (a quarter of Table 1's 64), keeping C and d
    where the group width allows: a variant that trains in minutes on a CPU."""
    cfg = selection.config
    base = min(cfg.base_planes, 16)
    width = cfg.bottleneck_width
    while base * width // 64 < 1:
        width *= 2
    candidate = cfg.replace(stage_blocks=tuple(1 for _ in cfg.stage_blocks), base_planes=base,
                            bottleneck_width=width, grouped_reduce=False)
    if candidate == cfg:
        return None
    return replace(selection, config=candidate)
