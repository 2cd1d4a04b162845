"""The project's rooms: the library knows nothing of the app; the app is one folder per
feature whose tab only lays out and wires (no torch, Captum, numpy or PIL work in it); only
the app frame imports a tab; only `resnext.explain` imports Captum."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (top level or inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" if node.module else f"{base}{alias.name}"
                         for alias in node.names)
    return names


def files(folder: str) -> list[Path]:
    found = sorted((ROOT / folder).rglob("*.py"))
    assert found, folder
    return found


FEATURES = ("architecture", "complexity", "run", "train", "attributions", "evaluate", "study")
TABS = sorted((ROOT / "explorer").glob("*/tab.py"))


def test_each_feature_is_one_folder_with_its_tab():
    assert {path.parent.name for path in TABS} == set(FEATURES)


@pytest.mark.parametrize("path", TABS, ids=lambda p: p.parent.name)
def test_tabs_do_no_tensor_work(path):
    heavy = {name for name in imported_modules(path)
             if name.split(".")[0] in {"torch", "captum", "numpy", "PIL", "torchinfo"}}
    assert heavy == set(), f"{path} imports {sorted(heavy)}: move that work to a service"


@pytest.mark.parametrize("path", files("explorer"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_a_feature_wires_its_tab(path):
    """No module imports a tab but the app frame; a feature's services never import a tab."""
    if path.name == "app.py" and path.parent.name == "explorer":
        return
    tabs = {name for name in imported_modules(path) if name.endswith(".tab") or ".tab." in name
            or name in {"..tab", ".tab"}}
    assert tabs == set(), f"{path} imports {sorted(tabs)}"


@pytest.mark.parametrize("path", files("explorer"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_library_calls_captum(path):
    captum = {name for name in imported_modules(path) if name.split(".")[0] == "captum"}
    assert captum == set(), f"{path} imports {sorted(captum)}: attribution lives in resnext.explain"


def test_captum_is_imported_only_by_resnext_explain():
    importers = {str(path.relative_to(ROOT)) for folder in ("resnext", "explorer")
                 for path in files(folder)
                 if any(name.split(".")[0] == "captum" for name in imported_modules(path))}
    assert importers and all(name.startswith("resnext/explain/") for name in importers), importers


@pytest.mark.parametrize("path", files("resnext"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_knows_nothing_of_the_app(path):
    app = {name for name in imported_modules(path)
           if name.split(".")[0] in {"explorer", "gradio", "plotly"}}
    assert app == set(), f"{path.name} imports {sorted(app)}"


@pytest.mark.parametrize("folder", sorted({p.parent for p in (ROOT / "explorer").rglob("*.py")}
                                          | {p.parent for p in (ROOT / "resnext").rglob("*.py")}),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_folder_holds_more_than_14_modules(folder):
    modules = sorted(p.name for p in folder.glob("*.py"))
    assert len(modules) <= 14, f"{folder.relative_to(ROOT)}: {len(modules)} modules {modules}"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import torch.nn as nn\n    from PIL import Image\n")
    assert {"torch.nn", "PIL", "PIL.Image"} <= imported_modules(sample)


def test_no_dropdown_input_event_rewrites_a_control(app_dirs):
    """Gradio fires a dropdown's `input` on a pick and again on the blur after it, so a
    handler that rewrites controls (a preset, a sweep's range) must answer `select`, which
    fires once; otherwise the repeat can undo the edit a person makes next."""
    import gradio as gr

    from explorer.app import create_app
    from explorer.context import AppOptions

    runs_dir, data_dir = app_dirs
    demo = create_app(AppOptions(runs_dir=runs_dir, data_dir=data_dir))
    controls = (gr.Slider, gr.Number, gr.Textbox, gr.Dropdown, gr.Radio, gr.Checkbox,
                gr.CheckboxGroup)
    offending, watched = [], 0
    for dependency in demo.fns.values():
        for block_id, event in dependency.targets:
            if isinstance(demo.blocks.get(block_id), gr.Dropdown) and event == "input":
                watched += 1
                offending += [f"{demo.blocks[block_id].label} -> {output.label}"
                               for output in dependency.outputs if isinstance(output, controls)]
    assert watched > 5  # the check sees the app's dropdowns (device, method, metric, ...)
    assert offending == []


def defined_functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_one_blur_and_one_stop_exception():
    """Issue 17: the blur (IG's blurred baseline, the insertion start) is written once, in
    resnext/explain/baselines.py; nothing in the app blurs; one exception says "stopped"."""
    blurs = {f"{path.relative_to(ROOT)}:{node.name}" for folder in ("resnext", "explorer")
             for path in files(folder) for node in defined_functions(path)
             if "blur" in node.name.lower()}
    assert blurs == {"resnext/explain/baselines.py:gaussian_blur",
                     "resnext/explain/baselines.py:blur_sigma"}
    kornia_filters = {str(path.relative_to(ROOT)) for folder in ("resnext", "explorer")
                      for path in files(folder)
                      if any(name.startswith("kornia.filters") for name in imported_modules(path))}
    assert kornia_filters == set()
    stops = {f"{path.relative_to(ROOT)}:{node.name}" for folder in ("resnext", "explorer")
             for path in files(folder)
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.ClassDef)
             and any(word in node.name for word in ("Cancel", "Stopped"))
             and node.name != "CancelFlags"}
    assert stops == {"resnext/explain/stopping.py:Stopped"}

