"""`pip install .` works: a wheel built from the repository, installed into a fresh virtual
environment, serves `import resnext`, the console scripts and the app's files from any folder.

The fresh environment gets no copy of torch & co.: a .pth file puts this environment's
site-packages after its own, so the installed wheel, not the checkout, is what it imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from explorer.shared import assets
from explorer.shared.images import sample_images
from explorer.shared.predictions import imagenet_class_names

ROOT = Path(__file__).resolve().parent.parent
# The checkout's own clutter, never part of a build: version control, environments, what
# builds, runs and downloads leave behind.
SKIP_AT_ROOT = {".git", ".venv", "venv", "build", "dist", "runs", "data", "artifacts",
                ".pytest_cache"}
TIMEOUT = 120  # seconds for any one command; each takes a few


def _ignore(folder: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", ".pyi"))}
    return skipped | (SKIP_AT_ROOT & set(names) if Path(folder) == ROOT else set())


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done.stdout


class Installed:
    """The wheel and the fresh environment it is installed in; commands run in `home`."""

    def __init__(self, base: Path) -> None:
        source = base / "source"  # a copy: an in-tree build's build/ could leak stale files
        shutil.copytree(ROOT, source, ignore=_ignore)
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
              "--no-index", "-q", "-w", str(base / "wheels"), str(source)], cwd=base)
        self.wheel = next((base / "wheels").glob("resnext_explorer-*.whl"))
        self.venv = base / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], cwd=base)
        self.python = self.venv / "bin" / "python"
        own = Path(_run([str(self.python), "-c", "import sysconfig; "
                         "print(sysconfig.get_paths()['purelib'])"], cwd=base).strip())
        (own / "project-dependencies.pth").write_text(
            "\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
        _run([sys.executable, "-m", "pip", "--python", str(self.python), "install",
              "--no-deps", "--no-index", "-q", str(self.wheel)], cwd=base)
        self.home = base / "elsewhere"  # not the repository: nothing to import from here
        self.home.mkdir()
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

    def run(self, *command: str) -> str:
        return _run([*command], cwd=self.home, env=self.env)

    def python_json(self, code: str) -> object:
        """Run `code` in the fresh environment; it prints one JSON value as its last line."""
        return json.loads(self.run(str(self.python), "-c", code).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    return Installed(tmp_path_factory.mktemp("packaging"))


def test_the_wheel_holds_both_packages_and_the_app_files_and_no_repository_tooling(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"resnext", "explorer"}  # no tests/, benchmarks/, tools/, assets/ at the top
    for package in ("resnext", "resnext/data", "resnext/train", "resnext/explain", "explorer",
                    "explorer/shared", "explorer/train", "explorer/attributions"):
        assert f"{package}/__init__.py" in names, package
    packaged = "explorer/assets/"
    assert f"{packaged}{assets.CLASS_NAMES_FILE}" in names
    for photo in sample_images():
        assert f"{packaged}{assets.SAMPLES_FOLDER}/{photo.name}" in names
    assert not [n for n in names if n.startswith(packaged) and "screenshot" in n]
    entry_points = zipfile.ZipFile(installed.wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "resnext-explorer = explorer.__main__:main" in entry_points
    assert "resnext-train = resnext.train.__main__:main" in entry_points


def test_import_from_another_folder_finds_the_installed_packages_not_the_checkout(installed):
    files = installed.python_json(
        "import json, resnext, explorer; print(json.dumps([resnext.__file__, explorer.__file__]))")
    for file in files:
        assert Path(file).is_relative_to(installed.venv), file
        assert not Path(file).is_relative_to(ROOT), file


def test_the_readme_library_example_runs_from_the_installed_package(installed):
    """The README's example, as written; its printed count is the model's own numel()."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use the library in your project", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    documented = int(re.search(r"print\(.*\)\s*#\s*(\d+)", example).group(1))
    check = "\nprint(sum(p.numel() for p in model.parameters()))"
    printed = installed.run(str(installed.python), "-c", example + check).split()
    assert [int(value) for value in printed] == [documented, documented]


@pytest.mark.parametrize("command, flags", [
    (["resnext-explorer", "--help"], ["--host", "--port", "--runs-dir", "--data-dir"]),
    (["resnext-train", "--help"], ["--data", "--epochs", "--batch-size", "--recipe"]),
    (["resnext-explain", "--help"], ["--methods", "--images", "--json"]),
    (["resnext-study", "--help"], ["create", "work", "show"]),
])
def test_console_scripts_answer_help(installed, command, flags):
    script = installed.venv / "bin" / command[0]
    assert script.is_file() and str(installed.python) in script.read_text()  # its interpreter
    usage = installed.run(*command)
    assert usage.startswith("usage:") and all(flag in usage for flag in flags), usage


def test_the_installed_app_finds_its_class_names_and_sample_photos(installed):
    found = installed.python_json(
        "import json\n"
        "from explorer.shared.assets import checkout_root\n"
        "from explorer.shared.predictions import imagenet_class_names\n"
        "from explorer.shared.images import sample_images\n"
        "print(json.dumps({'root': str(checkout_root()), 'names': imagenet_class_names(),\n"
        "                  'samples': [str(p) for p in sample_images()]}))")
    assert found["root"] == "None"  # an installed wheel, not a checkout
    assert found["names"] == list(imagenet_class_names()) and len(found["names"]) == 1000
    assert [Path(p).name for p in found["samples"]] == [p.name for p in sample_images()]
    assert len(found["samples"]) > 0
    assert all(Path(p).is_relative_to(installed.venv) for p in found["samples"])


def test_the_installed_app_starts_its_training_child(installed):
    """The Train tab's child (`python -m resnext.train`) runs from the wheel, no PYTHONPATH."""
    status = installed.python_json(
        "import json, time\n"
        "from pathlib import Path\n"
        "import resnext\n"
        "from explorer.selection import Selection\n"
        "from explorer.train.requests import make_request\n"
        "from explorer.train.jobs import TrainingManager\n"
        "cfg = resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,\n"
        "                            stage_blocks=(1, 1), stem='cifar', num_classes=6)\n"
        "manager = TrainingManager(Path('runs'), Path('data'))\n"
        "run = manager.start(make_request(Selection(cfg, 32), 'shapes', 16, 256, 64, 1, 64,\n"
        "                                 'quick', None, 0, 'cpu', Path('data')))\n"
        "deadline = time.monotonic() + 100\n"
        "while manager.status(run)['run']['state'] in ('queued', 'running') \\\n"
        "        and time.monotonic() < deadline:\n"
        "    time.sleep(0.2)\n"
        "print(json.dumps(manager.status(run)['run']))")
    assert status["state"] == "finished", status
    assert status["epochs_done"] == 1


def test_a_checkout_reads_its_own_assets_folder_and_lends_itself_to_the_training_child():
    from explorer.shared.children import child_environment

    assert assets.checkout_root() == ROOT
    assert assets.assets_dir() == ROOT / "assets"
    assert not assets.INSTALLED_ASSETS.exists()  # the repository keeps assets/ at the top
    # The child imports this checkout's resnext whatever its working folder.
    assert child_environment()["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)


def test_the_pinned_requirements_satisfy_every_declared_dependency(installed):
    """`pip install .[all]` next to requirements.txt's pins changes none of them (torch
    2.13.0 stays): each Requires-Dist, extras included, is met by the installed version."""
    declared = metadata.Distribution.at(next(
        (p for p in (installed.venv / "lib").glob("python*/site-packages/*.dist-info")
         if p.name.startswith("resnext_explorer-"))))
    requirements = [Requirement(r) for r in declared.requires or []]
    assert {r.name for r in requirements} >= {"torch", "safetensors", "numpy", "captum",
                                              "kornia", "gradio", "optuna", "psycopg",
                                              "resnext-explorer"}
    for requirement in requirements:
        if requirement.name == "resnext-explorer":
            continue  # an extra naming other extras
        installed_version = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed_version, prereleases=True), \
            f"{requirement} is not met by the pinned {installed_version}"
    scripts = declared.entry_points.select(group="console_scripts")
    assert {e.name for e in scripts} == {"resnext-explorer", "resnext-train",
                                        "resnext-explain", "resnext-study"}
