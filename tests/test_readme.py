"""The README's HTTP API examples run as written against the real server (README stays true)."""

import json
import re
import statistics
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TINY_CFG = ('cfg = \'{"cardinality": 4, "bottleneck_width": 2, "stage_blocks": [1, 1], '
            '"num_classes": 10, "stem": "cifar", "image_size": 32}\'')


def api_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## HTTP API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_api_example(app_url, monkeypatch) -> dict[str, list]:
    """Run the README's example as written (smaller work, see below); every result by endpoint."""
    from gradio_client import Client

    code = api_example()
    assert 'Client("http://127.0.0.1:7860/")' in code
    code = code.replace('Client("http://127.0.0.1:7860/")', f"Client({app_url!r}, verbose=False)")
    # Same calls, smaller work: the example's config for the Run/Complexity calls is swapped
    # for a tiny one (a 10-pass resnext50 batch-8 run takes half a minute on 2 cores).
    code = re.sub(r"^cfg = .*$", TINY_CFG, code, count=1, flags=re.M)
    code = code.replace('handle_file("photo.jpg")',
                        'handle_file("assets/samples/ball_on_grass.jpg")')
    results = record_predictions(monkeypatch)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    return results


def tiny_model_counts() -> tuple[int, int]:
    """(params, MACs) of the swapped-in tiny config from a built model: numel and PyTorch's
    own FLOP counter (2 FLOPs per MAC), not the app's arithmetic."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import resnext

    cfg = json.loads(TINY_CFG.split("=", 1)[1].strip().strip("'"))
    side = cfg.pop("image_size")
    config = resnext.ResNeXtConfig(**{**cfg, "stage_blocks": tuple(cfg["stage_blocks"])})
    model = resnext.build_model(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def record_predictions(monkeypatch) -> dict[str, list]:
    """Every answer `Client.predict` gives while the README's code runs, by endpoint."""
    from gradio_client import Client

    results: dict[str, list] = {}
    predict = Client.predict

    def recording_predict(self, *args, api_name=None, **kwargs):
        result = predict(self, *args, api_name=api_name, **kwargs)
        results.setdefault(api_name, []).append(result)
        return result

    monkeypatch.setattr(Client, "predict", recording_predict)
    return results


def test_readme_api_example_gives_the_documented_answers(app_url, monkeypatch):
    """Each call of the README's example, and what it must answer (reference numbers from the
    paper, torchvision's published counts and a built model, not from the app)."""
    results = run_api_example(app_url, monkeypatch)
    tiny_params, tiny_macs = tiny_model_counts()

    # Architecture: C=32, d=8, (3, 4, 23, 3) is torchvision's resnext101_32x8d.
    preset, width, depth, headline, *_ = results["/analyze"][0]
    assert preset["value"] == "resnext101_32x8d" and width["value"] == 8 and depth["value"] == "101"
    assert "88,791,336" in headline and "16,414,015,488" in headline
    figures = results["/figures"][0]  # 64x4d: torchvision publishes 83.455 M params, 15.46 GMACs
    assert (figures["params"], figures["macs"], figures["flops"]) == (
        83_455_272, 15_460_270_080, 2 * 15_460_270_080)
    assert figures["preset"] == "resnext101_64x4d" and figures["depth"] == 101
    assert sum(stage["params"] for stage in figures["stages"]) == figures["params"]
    assert results["/apply_preset"][0][:3] == (32, 8, "3, 4, 23, 3")
    assert results["/apply_depth"][0][:2] == ("3, 8, 36, 3", "imagenet")  # the standard 152
    assert results["/apply_json"][0][:3] == (4, 24, "3, 4, 6, 3")  # unnamed keys: defaults
    summary = results["/summary"][0][0]
    assert summary["data"][0][3:5] == ["1×1000", "25,028,904"]  # resnext50_32x4d, whole net
    assert results["/ping"] == ["ok"]

    # Complexity of the tiny config.
    breakdown = results["/complexity_breakdown"][0]
    assert (breakdown["total_params"], breakdown["total_macs"]) == (tiny_params, tiny_macs)
    assert sum(sum(series["params"]) for series in breakdown["series"]) == tiny_params
    sweep = {p["cardinality"]: p["bottleneck_width"] for p in results["/complexity_sweep"][0]["points"]}
    assert {c: sweep[c] for c in (1, 2, 4, 8)} == {1: 64, 2: 40, 4: 24, 8: 14}  # Table 2
    table3 = {(p["source"], p["label"]): p for p in results["/accuracy_vs_cost"][0]["points"]}
    resnext50 = table3[("paper Table 3, 50-layer", "32×4d")]
    assert (resnext50["top1_error"], resnext50["macs"]) == (22.2, 4_230_479_872)
    pins = results["/compare_pins"][0]["pins"]
    assert [(pin["name"], pin["params"]) for pin in pins] == [("ResNeXt-101 (32x8d)", 88_791_336)]

    # Run: batch 8 of the tiny config, 10 classes, 10 timed passes.
    run = results["/run"][0]
    assert run["output_shape"] == [8, 10] and run["shape_ok"] is True
    assert run["macs_per_image"] == tiny_macs and len(run["iteration_ms"]) == 10
    assert run["median_ms"] == pytest.approx(statistics.median(run["iteration_ms"]))
    assert [p["batch_size"] for p in results["/sweep"][0]["points"]] == [1, 2, 4, 8, 16]

    # Attributions, on the network /analyze chose (ResNeXt-101 32x8d, random weights).
    assert "random (seed 0)" in results["/attr_weights"][0]
    assert "ResNeXt-101 (32x8d)" in results["/attr_weights"][0]
    overlay, top5, text, *_ = results["/attribute"][0]
    with Image.open(overlay) as image:
        assert min(image.size) >= 224
    confidences = [c["confidence"] for c in top5["confidences"]]
    assert len(confidences) == 5 and confidences == sorted(confidences, reverse=True)
    assert top5["label"] == top5["confidences"][0]["label"] and top5["label"] in text
    assert "Grad-CAM" in text
    names = set((ROOT / "assets" / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines())
    assert {c["label"] for c in top5["confidences"]} <= names  # a 1000-class ImageNet head
    captions = [item["caption"] for item in results["/feature_maps"][0]]
    assert [c.split(";")[0] for c in captions] == [
        "layer1: 256 channels at 56×56", "layer2: 512 channels at 28×28",
        "layer3: 1024 channels at 14×14", "layer4: 2048 channels at 7×7"]


def test_readme_commands_match_ci():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = re.search(r"## Run the tests\n\n```bash\n(.*?)\n```", readme, re.S).group(1)
    assert test_command in ci  # CI runs exactly the README's test command
    app_command = re.search(r"## Run the app\n.*?```bash\n(.*?)\n```", readme, re.S).group(1)
    assert app_command.endswith("-m explorer") and "requirements.txt" in app_command


def test_readme_train_example_runs_as_written(app_url, app_dirs, monkeypatch):
    """The README's Train API block, as written: a run queued, followed to its end, listed,
    used, not stoppable once finished, then deleted (its folder gone, nothing else)."""
    from gradio_client import Client

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"```python\n(.*?)```",
                                               readme.split("## HTTP API", 1)[1], re.S)
                if "/train_start" in block)
    results = record_predictions(monkeypatch)
    before = {p.name for p in app_dirs[0].iterdir()} if app_dirs[0].is_dir() else set()
    exec(compile(code, "README.md", "exec"), {"c": Client(app_url, verbose=False)})
    run = results["/train_start"][0]["run_id"]
    assert results["/train_status"][-1]["run"]["state"] == "finished"
    assert [r["owner"] for r in results["/runs"][0] if r["run_id"] == run] == ["local"]
    assert results["/use_run"][0]["weights"] == f"trained run {run}"
    assert results["/train_stop"][0] == f"{run} is not running (it is finished)."
    assert results["/delete_run"][0].startswith(f"Deleted {run} (")
    assert {p.name for p in app_dirs[0].iterdir()} == before


def test_readme_study_example_runs_as_written(app_url, monkeypatch):
    """The README's Study API block, as written (the Train block's `tiny` config): estimate,
    create with a worker, status, the listing, then Stop (the worker ends, its trial is
    queued again)."""
    import time

    from gradio_client import Client

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme.split("## HTTP API", 1)[1], re.S)
    train = next(block for block in blocks if "/train_start" in block)
    code = next(block for block in blocks if "/study_create" in block)
    results = record_predictions(monkeypatch)
    client = Client(app_url, verbose=False)
    tiny = re.search(r"^tiny = (.*)$", train, re.M).group(1)
    exec(compile(code, "README.md", "exec"), {"c": client, "tiny": eval(tiny)})
    assert results["/study_estimate"][0]["estimate"]["trials"] == 4
    made = results["/study_create"][0]
    assert made["name"] == "c124" and made["trials"] == 4 and len(made["workers"]) == 1
    status = results["/study_status"][0]
    assert status["total"] == 4 and status["owner"] == "local"
    assert status["csv"].startswith("value,network,macs")
    assert [s["owner"] for s in results["/studies"][0] if s["name"] == "c124"] == ["local"]
    assert results["/study_stop"][0].startswith("Stopping 1 worker(s) of study c124 (cpu)")
    end = time.monotonic() + 60
    while time.monotonic() < end and any(
            w["alive"] for w in client.predict("c124", api_name="/study_status")["workers"]):
        time.sleep(0.5)
    status = client.predict("c124", api_name="/study_status")
    assert not any(w["alive"] for w in status["workers"])
    assert status["counts"]["RUNNING"] == 0
