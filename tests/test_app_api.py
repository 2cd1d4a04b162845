"""The Architecture tab through the real HTTP API (gradio_client against a launched server)."""

import json
import re
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError

import resnext

DEFAULTS = [32, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False, "resnet50"]


def analyze(client, **changes):
    names = ["cardinality", "bottleneck_width", "blocks_text", "stem", "block_form",
             "grouped_reduce", "num_classes", "image_size", "keep_complexity", "baseline"]
    values = dict(zip(names, DEFAULTS))
    values.update(changes)
    return client.predict(*values.values(), api_name="/analyze")


def test_ping(client):
    assert client.predict(api_name="/ping") == "ok"


def test_analyze_resnext101_32x8d(client):
    preset, width, depth, glance, stages, figure, config_json, seed = analyze(
        client, bottleneck_width=8, blocks_text="3, 4, 23, 3")
    assert preset["value"] == "resnext101_32x8d"
    assert depth["value"] == "101"
    assert "88,791,336" in glance and "16.41 GMACs" in glance
    assert stages["data"][-1][-2:] == ["88,791,336", "16,414,015,488"]
    assert json.loads(config_json)["bottleneck_width"] == 8
    assert seed["visible"] is False


def test_analyze_custom_and_keep_complexity(client):
    preset, width, _, glance, *_ = analyze(client, cardinality=8, bottleneck_width=99,
                                           keep_complexity=True)
    assert preset["value"] == "custom"
    assert width["value"] == 14 and width["interactive"] is False  # Table 2: C=8 -> d=14
    expected = resnext.complexity(resnext.ResNeXtConfig(cardinality=8, bottleneck_width=14), 224)
    assert f"{expected.params:,}" in glance


def test_seed_preset_shows_its_note(client):
    values = client.predict("seed_resnext50", api_name="/apply_preset")
    assert list(values[:3]) == [32, 4, "3, 4, 6, 3"] and values[3] == "cifar" and values[5] is True
    result = analyze(client, stem="cifar", grouped_reduce=True, num_classes=100)
    assert result[0]["value"] == "seed_resnext50"
    assert result[-1]["visible"] is True and "14,788,772" in result[-1]["value"]


@pytest.mark.parametrize("name", sorted(resnext.PRESETS))
def test_every_preset_round_trips_through_the_controls(client, name):
    values = client.predict(name, api_name="/apply_preset")
    # /apply_preset gives /analyze's config values in order; the base width comes last in
    # both (it came after the baseline choice), with the baseline before it.
    result = client.predict(*values[:-1], "resnet50", values[-1], api_name="/analyze")
    assert result[0]["value"] == name
    params = resnext.complexity(resnext.PRESETS[name], resnext.NATIVE_IMAGE_SIZE[name]).params
    assert f"{params:,}" in result[3]


def test_json_copy_and_paste(client):
    text = analyze(client, cardinality=4, bottleneck_width=24, block_form="b")[6]
    values = client.predict(text, api_name="/apply_json")
    assert list(values) == [4, 24, "3, 4, 6, 3", "imagenet", "b", False, 1000, 224, False, 64]


def test_figures_endpoint(client):
    data = client.predict(json.dumps({"cardinality": 64, "bottleneck_width": 4,
                                      "stage_blocks": [3, 4, 23, 3]}), 224, api_name="/figures")
    assert data["preset"] == "resnext101_64x4d"
    assert data["params"] == 83_455_272 and data["macs"] == 15_460_270_080
    assert [s["name"] for s in data["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


def test_summary_endpoint(client):
    table, path = client.predict(32, 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False, 2,
                                 api_name="/summary")
    assert table["data"][0][4] == "25,028,904"
    text = Path(path).read_text()
    assert "Total params: 25,028,904" in text and '"cardinality": 32' in text


@pytest.mark.parametrize("changes,message", [
    # Out-of-range numbers are checked once, against the library's limits, under the
    # control's name (the slider's own range is the same).
    (dict(cardinality=0), r"cardinality C must be an integer in \[1, 1024\], got 0"),
    (dict(cardinality=100000), r"cardinality C must be an integer in \[1, 1024\], got 100000"),
    (dict(cardinality="abc"), r"Cardinality C: expected a number in \[1, 1024\], got 'abc'"),
    (dict(keep_complexity="yes"), r"(?i)keep complexity"),
    (dict(blocks_text="3, 0, 6, 3"), r"stage_blocks\[1\] must be an integer in \[1, 64\], got 0"),
    (dict(blocks_text="3,,4"), r"has an empty entry"),
    (dict(blocks_text="<script>alert(1)</script>"), r"is not one"),
    (dict(num_classes=0), r"classes must be an integer in \[1, 100000\], got 0"),
    (dict(num_classes=2.5), r"classes must be an integer in \[1, 100000\], got 2.5"),
    (dict(image_size=5), r"input resolution must be an integer in \[16, 1024\], got 5"),
    (dict(stem="resnet"), r"Stem: .*resnet"),
    (dict(baseline="vgg16"), r"Compare against: .*vgg16"),
])
def test_out_of_range_values_get_clear_errors_and_server_keeps_serving(client, changes, message):
    with pytest.raises(AppError) as info:
        analyze(client, **changes)
    assert re.search(message, str(info.value)), str(info.value)
    assert "Traceback" not in str(info.value)
    assert client.predict(api_name="/ping") == "ok"
    assert "25,028,904" in analyze(client)[3]


def test_bad_json_is_explained(client):
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict("{oops", api_name="/apply_json")
    with pytest.raises(AppError, match=r"cardinality must be an integer in \[1, 1024\], got 0"):
        client.predict('{"cardinality": 0}', api_name="/apply_json")


def test_depth_choice_sets_blocks_and_stem(client):
    # Depth 29 is the paper's CIFAR net (Sec. 5.2): 32 px and 10 classes come with its stem.
    assert list(client.predict("29", "3, 4, 6, 3", "imagenet", 224, 1000,
                               api_name="/apply_depth")) == ["3, 3, 3", "cifar", 32, 10]
    assert list(client.predict("152", "3, 3, 3", "cifar", 32, 10, api_name="/apply_depth")) == [
        "3, 8, 36, 3", "imagenet", 224, 1000]
    assert list(client.predict("101", "3, 4, 6, 3", "imagenet", 320, 37,
                               api_name="/apply_depth")) == ["3, 4, 23, 3", "imagenet", 320, 37]
    assert list(client.predict("custom", "2, 2", "cifar", 48, 7, api_name="/apply_depth")) == [
        "2, 2", "cifar", 48, 7]


def test_api_only_endpoints_check_what_the_controls_used_to(client):
    # gr.api does no preprocessing: each value is checked by the handler, under its name.
    with pytest.raises(AppError, match=r"stem must be one of \('imagenet', 'cifar'\), got 'resnet'"):
        client.predict("101", "3, 4, 6, 3", "resnet", 224, 1000, api_name="/apply_depth")
    with pytest.raises(AppError, match=r"classes must be an integer in \[1, 100000\], got 'x'"):
        client.predict("custom", "2, 2", "cifar", 48, "x", api_name="/apply_depth")
    with pytest.raises(AppError, match=r"unknown preset 'nope'; choose one of resnet50, "):
        client.predict("nope", api_name="/apply_preset")
    with pytest.raises(AppError, match="'custom' stands for the values on the page's controls"):
        client.predict("custom", api_name="/apply_preset")
    with pytest.raises(AppError, match=r"cardinality C must be an integer in \[1, 1024\], got 'abc'"):
        client.predict("abc", 4, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False, 2,
                       api_name="/summary")
    assert client.predict(api_name="/ping") == "ok"


def test_api_only_endpoints_keep_their_defaults(client):
    # As when the page's controls stood behind them: the controls' first values.
    assert list(client.predict("29", api_name="/apply_depth")) == ["3, 3, 3", "cifar", 32, 10]
    assert list(client.predict(api_name="/apply_preset"))[:3] == [32, 4, "3, 4, 6, 3"]


# What needs session state (or reports progress) is an event; the rest only serves the API.
SESSION_EVENTS = {"analyze", "pin", "unpin", "clear_pins", "compare_pins", "use_run",
                  "run", "sweep"}
API_ONLY = {"ping", "figures", "summary", "apply_preset", "apply_depth", "apply_json",
            "complexity_breakdown", "complexity_sweep", "accuracy_vs_cost", "train_start",
            "train_status", "train_stop", "runs"}


def test_endpoints_without_session_state_have_no_hidden_trigger(tmp_path):
    from explorer.app import create_app
    from explorer.context import AppOptions

    demo = create_app(AppOptions(runs_dir=tmp_path / "runs", data_dir=tmp_path / "data"))
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert {name for name in SESSION_EVENTS | API_ONLY if fns[name].targets} == SESSION_EVENTS
    # Queues as before: arithmetic beside arithmetic, summaries in twos, one forward pass.
    queues = {name: (fns[name].concurrency_id, fns[name].concurrency_limit)
              for name in ("analyze", "figures", "summary", "run", "sweep")}
    assert queues == {"analyze": ("cheap", 8), "figures": ("cheap", 8),
                      "summary": ("summary", 2), "run": ("forward", 1),
                      "sweep": ("forward", 1)}
    assert all(fns[name].queue for name in API_ONLY)  # /ping measures the queued path
