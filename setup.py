"""What pyproject.toml cannot say: the wheel's packages and the files they read.

The repository keeps the app's files in a top-level `assets/` (the layout the README
documents); site-packages has no "top of the repository", so the wheel carries that folder
as the data-only package `explorer.assets`, where explorer/shared/assets.py looks first.
pyproject's `packages.find` lists only folders that exist under their import name, hence
this file: the discovered packages plus the mapped one.
"""

import runpy

from setuptools import find_packages, setup

# The asset file names, from the one module that knows them (plain pathlib, no package import).
ASSETS = runpy.run_path("explorer/shared/assets.py")
ASSETS_PACKAGE = "explorer.assets"

setup(
    # Every subpackage, present and future (resnext.data, .train, .explain, .study, ...);
    # not tests/, benchmarks/, tools/.
    packages=[*find_packages(include=["resnext*", "explorer*"]), ASSETS_PACKAGE],
    package_dir={ASSETS_PACKAGE: "assets"},
    # Only what the app reads: the class names, and the samples folder (the photos, the
    # README with their origin and licence, the script that drew them); no screenshots.
    package_data={ASSETS_PACKAGE: [ASSETS["CLASS_NAMES_FILE"], f"{ASSETS['SAMPLES_FOLDER']}/*"]},
    include_package_data=False,  # package_data above is the whole list
)
