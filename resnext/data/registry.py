"""Every dataset by name, written once: what builds it, what its test split knows (object
masks, a shortcut marker, distractor shapes), its default and fixed sizes, its classes and
the line the app shows. `from_spec`, the training CLI (`--data`) and the app (the Train tab's datasets, the
Evaluate tab's runs with masks) all read `DATASETS`; adding a dataset is one entry here plus
the function that makes it.

Torch-free: the app builds its controls from this table at start-up and reads run folders
with it; a loader imports its module (and torch) only when it is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # annotations only: the loaders' modules import torch
    from .tensors import DatasetPair

# The shapes, in label order; synthetic.py draws each by its name.
SHAPE_CLASSES = ("disc", "square", "triangle", "cross", "ring", "bar")
# shapes-shortcut's default: the marker tells the class in 90 % of training images.
DEFAULT_SHORTCUT = 0.9
# The side of a dataset whose size is chosen (generated shapes, an image folder).
IMAGE_SIZE_RANGE = (16, 512)
# Images generated, or kept from a fixed set, per split.
IMAGES_RANGE = (1, 1_000_000)
# "folder:PATH": a dataset that takes a path is named with it after this separator.
PATH_SEPARATOR = ":"

Loader = Callable[[Mapping[str, Any], bool], "DatasetPair"]  # (complete spec, download)


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: how to make it and what it is."""

    name: str
    description: str  # the one line a person reads beside the name (app, CLI help)
    loader: Loader
    num_classes: int | None = None  # None: the data says (a folder's class folders)
    # Default training and test images; a fixed set's are all of them; None: the data says.
    sizes: tuple[int, int] | None = None
    image_size: int = 32  # the default side, or the only one when `fixed_image_size`
    fixed_image_size: bool = False  # CIFAR: 32 x 32, whatever is asked
    generated: bool = False  # sizes say how many to generate; else the first N are kept
    masks: bool = False  # the test split marks every object pixel: attributions can be scored
    marker: bool = False  # a shortcut marker whose colour can tell the class
    distractors: bool = False  # shapes that are not the label, their pixels marked too
    downloadable: bool = False  # download=True fetches it from its official site
    takes_path: bool = False  # named "NAME:PATH", e.g. folder:/data/pets
    options: Mapping[str, Any] = field(default_factory=dict)  # its own spec keys, defaults

    @property
    def argument(self) -> str:
        """How a command line names it: "shapes", "folder:PATH"."""
        return f"{self.name}{PATH_SEPARATOR}PATH" if self.takes_path else self.name

    def defaults(self) -> dict[str, Any]:
        """Every spec key its loader reads, at its default (a spec overrides them)."""
        values: dict[str, Any] = {"image_size": self.image_size, "seed": 0, **self.options}
        if self.generated and self.sizes is not None:
            values["sizes"] = {"train": self.sizes[0], "test": self.sizes[1]}
        return values


# Loaders: (spec with every key its entry's defaults give, download) -> DatasetPair.

def _shapes(spec: Mapping[str, Any], download: bool) -> DatasetPair:
    from .synthetic import shapes

    return shapes(n_train=spec["sizes"]["train"], n_test=spec["sizes"]["test"],
                  image_size=spec["image_size"], seed=spec["seed"],
                  shortcut=spec.get("shortcut"))


def _shapes_distractors(spec: Mapping[str, Any], download: bool) -> DatasetPair:
    from .synthetic import shapes_distractors

    return shapes_distractors(n_train=spec["sizes"]["train"], n_test=spec["sizes"]["test"],
                              image_size=spec["image_size"], seed=spec["seed"])


def _cifar10(spec: Mapping[str, Any], download: bool) -> DatasetPair:
    from .cifar import cifar10

    return cifar10(_root(spec), download=download)


def _cifar100(spec: Mapping[str, Any], download: bool) -> DatasetPair:
    from .cifar import cifar100

    return cifar100(_root(spec), download=download, labels=spec["labels"])


def _folder(spec: Mapping[str, Any], download: bool) -> DatasetPair:
    from .folder import image_folder

    return image_folder(_root(spec), image_size=spec["image_size"],
                        test_fraction=spec["test_fraction"], seed=spec["seed"])


def _root(spec: Mapping[str, Any]) -> str:
    if not spec.get("root"):
        raise ValueError(f"dataset {spec['name']!r} needs a root: the folder that holds it")
    return spec["root"]


_CIFAR = dict(sizes=(50_000, 10_000), fixed_image_size=True, downloadable=True)
DATASETS: dict[str, DatasetEntry] = {entry.name: entry for entry in (
    DatasetEntry("shapes", "shapes (generated: 6 classes, masks known)", _shapes,
                 num_classes=len(SHAPE_CLASSES), sizes=(10_000, 1_000), generated=True,
                 masks=True),
    DatasetEntry("shapes-shortcut",
                 "shapes with the shortcut marker (the corner's colour tells the class)",
                 _shapes, num_classes=len(SHAPE_CLASSES), sizes=(10_000, 1_000),
                 generated=True, masks=True, marker=True,
                 options={"shortcut": DEFAULT_SHORTCUT}),
    DatasetEntry("shapes-distractors",
                 "shapes among 1 to 3 smaller shapes of other classes (the largest is the label)",
                 _shapes_distractors, num_classes=len(SHAPE_CLASSES), sizes=(10_000, 1_000),
                 generated=True, masks=True, distractors=True),
    DatasetEntry("cifar10", "CIFAR-10 (from the data directory)", _cifar10, num_classes=10,
                 **_CIFAR),
    DatasetEntry("cifar100", "CIFAR-100 (from the data directory)", _cifar100,
                 num_classes=100, options={"labels": "fine"}, **_CIFAR),
    DatasetEntry("folder", "an image folder: one sub-folder of images per class", _folder,
                 image_size=64, takes_path=True, options={"test_fraction": 0.2}),
)}
NAMES = tuple(DATASETS)


def entry(name: Any) -> DatasetEntry:
    """The entry of a dataset name, or a ValueError listing the known names."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def argument_forms() -> list[str]:
    """What a command line's --data may be: every name, "folder:PATH" for a path."""
    return [item.argument for item in DATASETS.values()]


def _one_of(forms: list[str]) -> str:
    return ", ".join(forms[:-1]) + " or " + forms[-1] if len(forms) > 1 else forms[0]


def parse_argument(text: Any, what: str = "--data") -> tuple[DatasetEntry, str | None]:
    """(entry, path) of a dataset as a command line names it: "cifar10", "folder:PATH"."""
    name, separator, path = str(text).partition(PATH_SEPARATOR)
    known = DATASETS.get(name) if isinstance(text, str) else None
    if known is None or bool(separator) != known.takes_path or (separator and not path):
        raise ValueError(f"{what} must be {_one_of(argument_forms())}, got {text!r}")
    return known, path or None


def request_spec(data: str, *, root: str | Path | None = None, image_size: int | None = None,
                 n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                 shortcut: float | None = None) -> dict[str, Any]:
    """The spec of a dataset as the CLI and the app ask for one. `data` as `parse_argument`
    reads it; `root` where fixed sets live; None keeps the entry's default. A generated set
    makes `n_train`/`n_test` images, a fixed one keeps its first ones."""
    chosen, path = parse_argument(data)
    spec: dict[str, Any] = {"name": chosen.name, "seed": seed}
    if path is not None or root is not None:
        spec["root"] = str(path if path is not None else root)
    if image_size is not None and not chosen.fixed_image_size:
        spec["image_size"] = image_size
    if shortcut is not None and chosen.marker:
        spec["shortcut"] = shortcut
    counts = {split: count for split, count in (("train", n_train), ("test", n_test))
              if count is not None}
    spec["sizes" if chosen.generated else "limit"] = counts
    return spec


def load(spec: Mapping[str, Any], download: bool = False) -> DatasetPair:
    """The dataset a spec describes (a run's "data" section, `request_spec`'s, or a
    DatasetPair's `.spec`); `download` fetches a missing downloadable one."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"a dataset spec must be a mapping with a name, got {spec!r}")
    chosen = entry(spec.get("name"))
    defaults = chosen.defaults()
    complete = {**defaults, **spec}
    if "sizes" in defaults:
        complete["sizes"] = {**defaults["sizes"], **(spec.get("sizes") or {})}
    pair = chosen.loader(complete, download)
    from .tensors import subset

    limit = spec.get("limit") or {}
    return subset(pair, limit.get("train"), limit.get("test"))


def class_folders(root: str | Path) -> list[str]:
    """The class folders of an image folder: its sub-folders not hidden, sorted (the
    labels' order)."""
    return sorted(p.name for p in Path(root).iterdir()
                  if p.is_dir() and not p.name.startswith("."))
