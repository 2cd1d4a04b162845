"""Where the files the app reads (ImageNet class names, sample photos) lie, in a checkout of
the repository and in an installed wheel alike: the one place that knows.

The repository keeps them in a top-level `assets/` folder, beside `explorer/`; setup.py maps
that folder into the wheel as the data-only package `explorer.assets`, since site-packages
has no "top of the repository". A real folder either way, not an importlib.resources
Traversable: Gradio serves the samples by file path.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # the explorer package's own folder
INSTALLED_ASSETS = _PACKAGE / "assets"  # what setup.py's package_dir maps assets/ to
CLASS_NAMES_FILE = "imagenet_classes.txt"  # ImageNet-1K's names, one a line, in index order
SAMPLES_FOLDER = "samples"  # the sample photos (and their README: origin and licence)


def checkout_root() -> Path | None:
    """The repository's folder when the app runs from a checkout (assets/ beside explorer/,
    as in an editable install too), else None: an installed wheel."""
    if INSTALLED_ASSETS.is_dir():
        return None
    root = _PACKAGE.parent
    return root if (root / "assets").is_dir() else None


def assets_dir() -> Path:
    """The assets folder: the wheel's `explorer/assets`, else the checkout's `assets/`."""
    root = checkout_root()
    return INSTALLED_ASSETS if root is None else root / "assets"


def asset_path(name: str) -> Path:
    """A file or folder inside the assets folder (e.g. CLASS_NAMES_FILE, SAMPLES_FOLDER)."""
    return assets_dir() / name
