"""Complexity tab: every plotted number against `resnext.complexity` and the paper's tables,
through the services, the real HTTP API (two sessions' pins) and a real browser."""

import json
import re
import statistics
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import resnext
from explorer.selection import Selection
from explorer.complexity import charts
from resnext import IMAGENET_DEPTHS, ResNeXtConfig

RESNEXT50 = Selection(resnext.PRESETS["resnext50_32x4d"], 224)
CIFAR29 = Selection(resnext.PRESETS["resnext29_8x64d"], 32)
SEED50 = Selection(resnext.PRESETS["seed_resnext50"], 64)  # grouped first 1x1: C | 64 only

# The paper's numbers, typed in from the paper (not read from the code under test).
TABLE_2 = {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}  # C -> d
TABLE_2_GROUP_WIDTH = [64, 80, 96, 112, 128]
TABLE_3 = {50: [23.9, 23.0, 22.6, 22.3, 22.2], 101: [22.0, 21.7, 21.4, 21.3, 21.2]}
# torchvision's published top-1 (%), from its weights metadata.
TORCHVISION_TOP1 = {
    "resnet50.IMAGENET1K_V1": 76.130, "resnet50.IMAGENET1K_V2": 80.858,
    "resnext50_32x4d.IMAGENET1K_V1": 77.618, "resnext50_32x4d.IMAGENET1K_V2": 81.198,
    "resnext101_32x8d.IMAGENET1K_V1": 79.312, "resnext101_32x8d.IMAGENET1K_V2": 82.834,
    "resnext101_64x4d.IMAGENET1K_V1": 83.246,
}


def traces_on(fig, axis: str):
    """The figure's traces drawn on x axis `axis` ('x', 'x2', ...)."""
    return [t for t in fig.data if (t.xaxis or "x") == axis]


def as_json(selection: Selection) -> str:
    return selection.to_json()


# 1. Breakdown ------------------------------------------------------------------------------

@pytest.mark.parametrize("selection", [RESNEXT50, CIFAR29, SEED50], ids=["50", "cifar29", "seed"])
def test_breakdown_bars_are_the_librarys_numbers(selection):
    report = resnext.complexity(selection.config, selection.image_size)
    table = report.by_segment_and_role()
    fig = charts.breakdown_figure(charts.breakdown_data(selection, "absolute", "stage"))
    segments = [s.name for s in report.segments]
    for axis, metric in (("x", 0), ("x2", 1)):
        traces = traces_on(fig, axis)
        assert [t.name for t in traces] == [resnext.ROLE_LABELS[r] for r in resnext.ROLES]
        for role, trace in zip(resnext.ROLES, traces):
            expected = [table[seg].get(role, (0, 0))[metric] for seg in segments]
            assert list(trace.y) == expected
        stacked = [sum(t.y[i] for t in traces) for i in range(len(segments))]
        assert stacked == [(s.params, s.macs)[metric] for s in report.segments]
        assert sum(stacked) == (report.params, report.macs)[metric]


def test_breakdown_share_and_per_layer_type():
    report = resnext.complexity(RESNEXT50.config, 224)
    share = charts.breakdown_figure(charts.breakdown_data(RESNEXT50, "share", "layer type"))
    roles = report.by_role()
    for axis, metric, total in (("x", 0, report.params), ("x2", 1, report.macs)):
        traces = traces_on(share, axis)
        per_role = [sum(t.y[i] for t in traces) for i in range(len(resnext.ROLES))]
        assert per_role == pytest.approx([100 * roles[r][metric] / total for r in resnext.ROLES])
        assert sum(per_role) == pytest.approx(100)
    # Paper Sec. 3.3: in ResNeXt-50 the grouped 3x3 is a small share of the weights.
    grouped = roles["grouped"][0] / report.params
    assert 0.05 < grouped < 0.2


# 2. Sweep ---------------------------------------------------------------------------------

def test_sweep_lines_are_the_librarys_numbers():
    request = charts.SweepRequest("bottleneck_width", 1, 64, 12, "geometric", False)
    data = charts.sweep_data(CIFAR29, request)
    fig = charts.sweep_figure(data)
    line_params, line_macs = fig.data[0], [t for t in fig.data if t.name.startswith("sweep")][1]
    assert list(line_params.x) == list(line_macs.x) == [p["value"] for p in data["points"]]
    # Geometric spacing rounded to whole widths: duplicates at the low end merge.
    assert line_params.x[0] == 1 and line_params.x[-1] == 64 and 9 <= len(line_params.x) <= 12
    for d, params, macs in zip(line_params.x, line_params.y, line_macs.y):
        report = resnext.complexity(CIFAR29.config.replace(bottleneck_width=d), 32)
        assert (params, macs) == (report.params, report.macs)
    current = [t for t in fig.data if t.name.startswith("current")]
    assert [(t.x[0], t.y[0]) for t in current] == [
        (64, resnext.complexity(CIFAR29.config, 32).params),
        (64, resnext.complexity(CIFAR29.config, 32).macs)]


@pytest.mark.parametrize("variable, expected_config", [
    ("depth", lambda v: (RESNEXT50.config.replace(stage_blocks=IMAGENET_DEPTHS[v]), 224)),
    ("image_size", lambda v: (RESNEXT50.config, v)),
])
def test_sweep_depth_and_resolution(variable, expected_config):
    low, high = charts.SWEEP_DEFAULTS[variable]
    data = charts.sweep_data(RESNEXT50, charts.SweepRequest(variable, low, high, 6, "linear"))
    assert data["points"] and not data["skipped"]
    for point in data["points"]:
        report = resnext.complexity(*expected_config(point["value"]))
        assert (point["params"], point["macs"]) == (report.params, report.macs)
    if variable == "depth":
        assert [p["value"] for p in data["points"]] == sorted(IMAGENET_DEPTHS)


def test_keep_complexity_follows_table_2_and_marks_its_points():
    request = charts.SweepRequest("cardinality", 1, 64, 16, "geometric", keep_complexity=True)
    data = charts.sweep_data(RESNEXT50, request)
    fig = charts.sweep_figure(data)
    for point in data["points"]:
        assert point["bottleneck_width"] == resnext.preserving_width(point["value"])
    marks = [t for t in fig.data if t.name == "paper Table 2 (C, d)"]
    assert len(marks) == 2  # on the params and the MACs panel
    for trace, metric in zip(marks, ("params", "macs")):
        assert list(trace.x) == list(TABLE_2)
        assert [row[1] for row in trace.customdata] == list(TABLE_2.values())
        assert [row[2] for row in trace.customdata] == TABLE_2_GROUP_WIDTH
        for c, y in zip(trace.x, trace.y):
            cfg = RESNEXT50.config.replace(cardinality=c, bottleneck_width=TABLE_2[c])
            assert y == getattr(resnext.complexity(cfg, 224), metric)
    # The line passes through the marks, and is nearly flat there (Table 2's point):
    # every Table 2 network is within 3 % of ResNet-50's parameters and MACs.
    line = {p["value"]: p for p in data["points"]}
    resnet50 = resnext.complexity(resnext.PRESETS["resnet50"], 224)
    for c in TABLE_2:
        assert line[c]["params"] == pytest.approx(resnet50.params, rel=0.03)
        assert line[c]["macs"] == pytest.approx(resnet50.macs, rel=0.05)


def test_invalid_points_are_skipped_and_said():
    # C·d may be at most 16384: with C = 32, d above 512 cannot exist.
    data = charts.sweep_data(RESNEXT50, charts.SweepRequest("bottleneck_width", 256, 1024, 8,
                                                            "linear"))
    assert [p["value"] for p in data["points"]] == [256, 366, 475]
    assert [s["value"] for s in data["skipped"]] == [585, 695, 805, 914, 1024]
    assert "Skipped 5 values" in data["note"] and "16384" in data["note"]
    # The seed's grouped first 1x1 needs C to divide the stem's 64 channels.
    seed = charts.sweep_data(SEED50, charts.SweepRequest("cardinality", 1, 16, 16, "linear"))
    assert [p["value"] for p in seed["points"]] == [1, 2, 4, 8, 16]
    assert "divides 64" in seed["note"]


@pytest.mark.parametrize("args, message", [
    (("cardinality", 8, 4), "must not exceed"),
    (("cardinality", 0, 4), "must be in [1, 1024]"),
    (("depth", 26, 300), "must be in [26, 200]"),
    (("width", 1, 4), "sweep variable"),
    (("cardinality", 1, 4, 1), "number of points"),
    (("cardinality", 1.5, 4), "must be an integer, got 1.5"),
    (("cardinality", 1, 4, 4, "cubic"), "spacing"),
])
def test_bad_sweep_requests_say_why(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        charts.SweepRequest(*args)


def test_huge_sweep_is_arithmetic_fast():
    # C up to 1024 at depth 200: 256 networks of 200 layers, each answered by arithmetic.
    deep = Selection(RESNEXT50.config.replace(stage_blocks=IMAGENET_DEPTHS[200]), 224)
    request = charts.SweepRequest("cardinality", 1, 1024, 256, "linear")
    single = []
    for c in (3, 5, 7):  # uncached single calls, for scale on this (shared, noisy) machine
        cfg = deep.config.replace(cardinality=c * 97)
        start = time.perf_counter()
        resnext.complexity(cfg, 223)
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    data = charts.sweep_data(deep, request)
    elapsed = time.perf_counter() - start
    # 256 spread points plus the current C = 32, which the line always passes through.
    assert len(data["points"]) == 257 and not data["skipped"]
    assert data["points"][-1]["params"] == resnext.complexity(
        deep.config.replace(cardinality=1024), 224).params
    # About one complexity call per point; generous for noise, far below building models.
    assert elapsed < 4 * 257 * statistics.median(single) + 1.0, (elapsed, single)


# 3. Accuracy vs cost ---------------------------------------------------------------------

def test_accuracy_points_are_the_papers_and_torchvisions():
    data = charts.accuracy_data(RESNEXT50)
    fig = charts.accuracy_figure(data)
    by_name = {t.name: t for t in fig.data}
    for depth, errors in TABLE_3.items():
        trace = by_name[f"paper Table 3, {depth}-layer"]
        assert list(trace.y) == errors
        expected_x = [resnext.complexity(ResNeXtConfig(cardinality=c, bottleneck_width=d,
                                                       stage_blocks=IMAGENET_DEPTHS[depth]),
                                         224).macs for c, d in TABLE_2.items()]
        assert list(trace.x) == expected_x
    published = [p for p in data["points"] if p["source"].startswith("torchvision")]
    assert {p["name"]: p["top1"] for p in published} == TORCHVISION_TOP1
    for point in published:
        weights = resnext.PUBLISHED_WEIGHTS[point["name"]]
        assert point["macs"] == resnext.complexity(resnext.PRESETS[weights.preset], 224).macs
        assert point["top1_error"] == pytest.approx(100 - TORCHVISION_TOP1[point["name"]], abs=1e-9)
    plotted = [(x, y) for t in fig.data if t.name.startswith("torchvision") for x, y in zip(t.x, t.y)]
    assert sorted(plotted) == sorted((p["macs"], p["top1_error"]) for p in published)
    # torchvision's own "GFLOPS" (really GMACs) for these weights.
    assert {round(p["macs"] / 1e9, 3) for p in published} == {4.089, 4.23, 16.414, 15.46}
    # The current config is a vertical line at its MACs; every point is labelled with its source.
    line = by_name["current: ResNeXt-50 (32x4d) at 224 px"]
    assert set(line.x) == {resnext.complexity(RESNEXT50.config, 224).macs}
    labels = [a.text for a in fig.layout.annotations]
    assert len(labels) == len(data["points"]) == 17
    assert all(label.startswith(("paper ", "torchvision ")) for label in labels)
    assert "resnext50_32x4d V1" in data["within_10_percent"]["torchvision V1"]


def test_accuracy_note_at_another_resolution():
    small = Selection(RESNEXT50.config, 64)
    data = charts.accuracy_data(small)
    assert data["current_macs"] == resnext.complexity(RESNEXT50.config, 64).macs
    assert "No published model" in charts.accuracy_note(data)


# 4. Pins ----------------------------------------------------------------------------------

def _pinned(*selections: Selection) -> list:
    pins: list = []
    for selection in selections:
        pins, _ = charts.pin(pins, selection)
    return pins


def test_pins_are_bounded_unique_and_removable():
    widths = [1, 2, 3, 4, 5, 6, 7, 8]
    pins = _pinned(*(Selection(RESNEXT50.config.replace(bottleneck_width=d), 224) for d in widths))
    assert len(pins) == charts.MAX_PINS == 8
    same, note = charts.pin(pins, pins[2].selection)
    assert same == pins and "Already pinned as #3" in note
    with pytest.raises(ValueError, match="at most 8"):
        charts.pin(pins, Selection(RESNEXT50.config.replace(bottleneck_width=9), 224))
    kept = charts.unpin(pins, charts.pin_labels(pins)[1:3])
    assert [p.selection.config.bottleneck_width for p in kept] == [1, 4, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="not pinned"):
        charts.unpin(kept, ["#9 nothing"])


def test_removing_a_pin_keeps_the_others_numbers_and_colours():
    pins = _pinned(RESNEXT50, CIFAR29, Selection(resnext.PRESETS["resnet50"], 224))
    before = {p.selection: (p.number, p.color) for p in pins}
    kept = charts.unpin(pins, [pins[1].label])
    assert [p.number for p in kept] == [1, 3]
    assert all(before[p.selection] == (p.number, p.color) for p in kept)
    assert len({p.color for p in pins}) == 3
    # A new pin takes the next number, never a removed one's (no two pins ever share "#n").
    again, note = charts.pin(kept, Selection(resnext.PRESETS["resnext101_32x8d"], 224))
    assert again[-1].number == 4 and "Pinned #4" in note


def test_compare_bars_are_the_librarys_numbers():
    pins = _pinned(RESNEXT50, CIFAR29, Selection(resnext.PRESETS["resnext101_64x4d"], 320))
    fig = charts.compare_figure(charts.compare_data(pins))
    for item in pins:
        selection = item.selection
        report = resnext.complexity(selection.config, selection.image_size)
        bars = [t for t in fig.data if t.name == item.label]
        values = [t.y[0] for t in bars]
        assert values == [report.params, report.macs, report.activation_bytes,
                          report.weight_bytes, report.depth]
        assert {t.marker.color for t in bars} == {item.color}


def test_stage_by_stage_comparison_gives_each_stages_difference():
    resnet = Selection(resnext.PRESETS["resnet50"], 224)
    pins = _pinned(resnet, RESNEXT50)
    data = charts.compare_data(pins)
    rows = charts.stage_compare_rows(data)
    first, second = (resnext.complexity(s.config, 224) for s in (resnet, RESNEXT50))
    for stage_a, stage_b in zip(first.segments, second.segments):
        row_a, row_b = [r for r in rows if r[0] == stage_a.name]
        assert row_a[1:2] == ["#1"] and row_a[7] == "–"
        assert row_b[6] == f"{stage_b.params:,}"
        assert row_b[7] == f"{stage_b.params - stage_a.params:+,}"
        assert row_b[9] == f"{stage_b.macs - stage_a.macs:+,}"
    # Summed over the stages, the differences are the totals' difference.
    total = sum(int(r[7].replace(",", "")) for r in rows if r[1] == "#2")
    assert total == second.params - first.params
    csv_text = charts.compare_csv(data)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("pin,network,image_size,config,stage")
    assert len(lines) == 1 + 2 * (len(first.segments) + 1)
    assert f",total,,,,16,{second.params},{second.macs}" in csv_text


def test_sweep_csv_has_every_point():
    data = charts.sweep_data(RESNEXT50, charts.SweepRequest("image_size", 16, 1024, 9,
                                                           "geometric", False))
    lines = charts.sweep_csv(data).strip().splitlines()
    assert len(lines) == 1 + len(data["points"])
    last = data["points"][-1]
    assert lines[-1].endswith(f",{last['params']},{last['macs']}")
    # The resolution axis labels the usual sides only (plotly's log ticks overlap here).
    ticks = list(charts.sweep_figure(data).layout.xaxis.tickvals)
    assert ticks == [16, 32, 64, 96, 128, 160, 224, 320, 448, 640, 1024]


def test_figures_suit_light_and_dark_pages():
    figures = [charts.breakdown_figure(charts.breakdown_data(RESNEXT50)),
               charts.sweep_figure(charts.sweep_data(RESNEXT50, charts.SweepRequest(
                   "cardinality", 1, 64, 8, "geometric", True))),
               charts.accuracy_figure(charts.accuracy_data(RESNEXT50)),
               charts.compare_figure(charts.compare_data([]))]
    for fig in figures:
        layout = fig.layout
        assert layout.paper_bgcolor == layout.plot_bgcolor == "rgba(0,0,0,0)"
        assert layout.font.color not in (None, "black", "#000", "#000000", "#2a3f5f")
        assert layout.width is None  # follows the page's width (no sideways scrolling)
        axes = [a for name, a in layout.to_plotly_json().items() if name.startswith("yaxis")]
        assert all(a.get("title", {}).get("text") or a.get("tickformat") for a in axes)


# Through the real app: the API endpoints and per-session pins ------------------------------

def test_chart_endpoints_return_the_librarys_numbers(client):
    breakdown = client.predict(as_json(CIFAR29), "absolute", "stage",
                               api_name="/complexity_breakdown")
    report = resnext.complexity(CIFAR29.config, 32)
    assert breakdown["total_params"] == report.params == 34_426_698
    expand = next(s for s in breakdown["series"] if s["key"] == "expand")
    assert expand["macs"] == [report.by_segment_and_role()[s.name].get("expand", (0, 0))[1]
                              for s in report.segments]

    huge = Selection(RESNEXT50.config.replace(stage_blocks=IMAGENET_DEPTHS[200]), 224)
    sweep = client.predict(as_json(huge), "cardinality", 1, 1024, 32, "geometric", True,
                           api_name="/complexity_sweep")
    assert sweep["points"][-1]["value"] == 1024 and sweep["points"][-1]["bottleneck_width"] == 1
    assert [p["cardinality"] for p in sweep["table_2"]] == list(TABLE_2)

    accuracy = client.predict(as_json(RESNEXT50), api_name="/accuracy_vs_cost")
    assert [p["top1_error"] for p in accuracy["points"][:5]] == TABLE_3[50]

    with pytest.raises(AppError, match="must not exceed"):
        client.predict(as_json(RESNEXT50), "cardinality", 64, 1, 8, "linear", False,
                       api_name="/complexity_sweep")


def _analyze(session: Client, cardinality: int, width: int) -> None:
    # The Architecture tab's endpoint sets this session's Selection, as its sliders do.
    session.predict(cardinality, width, "3, 4, 6, 3", "imagenet", "c", False, 1000, 224, False,
                    "resnet50", api_name="/analyze")


def test_two_sessions_never_see_each_others_pins(app_url):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    _analyze(alice, 32, 4)
    _analyze(bob, 1, 64)
    table, stage_table, plot, _, note, csv_file, data = alice.predict(api_name="/pin")
    assert note.startswith("Pinned #1 ResNeXt-50 (32x4d)")
    bob.predict(api_name="/pin")
    _analyze(bob, 64, 4)
    bob.predict(api_name="/pin")

    alice_pins = alice.predict(api_name="/compare_pins")["pins"]
    bob_pins = bob.predict(api_name="/compare_pins")["pins"]
    assert [p["name"] for p in alice_pins] == ["ResNeXt-50 (32x4d)"]
    assert [p["name"] for p in bob_pins] == ["ResNet-50 (1x64d)", "ResNeXt-50 (64x4d)"]
    assert bob_pins[0]["params"] == resnext.complexity(resnext.PRESETS["resnet50"], 224).params

    # The plot the browser gets carries the same numbers.
    figure = json.loads(plot["plot"])
    first_bar = next(t for t in figure["data"] if t["xaxis"] == "x")
    assert first_bar["y"] == [resnext.complexity(resnext.PRESETS["resnext50_32x4d"], 224).params]
    assert table["data"][0][4] == "25,028,904"

    *_, data = bob.predict(["#1 ResNet-50 (1x64d) · 224 px"], api_name="/unpin")
    assert [p["name"] for p in data["pins"]] == ["ResNeXt-50 (64x4d)"]
    assert len(alice.predict(api_name="/compare_pins")["pins"]) == 1
    *_, data = alice.predict(api_name="/clear_pins")
    assert data["pins"] == []
    assert len(bob.predict(api_name="/compare_pins")["pins"]) == 1


@pytest.mark.browser
def test_charts_follow_the_architecture_controls(page):
    from playwright.sync_api import expect

    page.get_by_label("Preset").click()
    page.get_by_role("option", name="resnet50", exact=True).click()
    expect(page.locator(".rx-cards")).to_contain_text("25,557,032", timeout=20_000)
    page.get_by_role("tab", name="Complexity").click()
    breakdown = page.locator(".js-plotly-plot").filter(has_text="Parameters (total")
    expect(breakdown).to_contain_text("Parameters (total 25,557,032)", timeout=20_000)
    page.get_by_role("button", name="Pin current config").click()
    expect(page.get_by_text("Pinned #1 ResNet-50 (1x64d)")).to_be_visible(timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
