"""What a person sees: the Run tab in headless Chromium (choose a preset, run, read the result)."""

import re

import pytest
from playwright.sync_api import expect

import resnext

pytestmark = pytest.mark.browser


def set_slider_to_minimum(page, name: str) -> None:
    slider = page.get_by_role("slider", name=re.compile(name))
    slider.focus()
    slider.press("Home")  # the keyboard's way to a range's minimum


def test_choose_preset_run_and_see_the_result_and_the_table(page):
    # Architecture tab: pick the ResNet-50 preset (the cheapest ImageNet network to run).
    expect(page.locator(".rx-cards")).to_contain_text("25,028,904", timeout=30_000)
    page.get_by_label("Preset").click()
    page.get_by_role("option", name="resnet50", exact=True).click()
    expect(page.locator(".rx-cards")).to_contain_text("25,557,032", timeout=20_000)

    page.get_by_role("tab", name="Run", exact=True).click()
    results = page.locator("#run-results")
    table = page.locator("#run-table")
    expect(results).not_to_contain_text("Median latency")  # nothing measured yet
    expect(table).not_to_contain_text("ResNet-50")
    # Shortest honest run: no warm-up, one timed pass (each slider at its minimum).
    set_slider_to_minimum(page, "Warm-up passes")
    set_slider_to_minimum(page, "Timed passes")

    page.get_by_role("button", name="Run", exact=True).click()
    expect(results).to_contain_text("Median latency", timeout=90_000)
    expect(results).to_contain_text("over 1 timed passes")
    expect(results).to_contain_text("1×1000")  # output shape: batch 1, ImageNet's classes
    expect(results).to_contain_text("as expected")
    # Achieved compute is quoted from the exact MACs: 2 × 4.09 GMACs per image.
    macs = resnext.complexity(resnext.PRESETS["resnet50"], 224).macs
    assert macs == 4_089_184_256  # torchvision's published 4.089 GFLOPS (= MACs)
    expect(results).to_contain_text("4.09 GMACs")
    # Gradio draws the table's body as a virtual list of role="row" elements, after the header.
    rows = table.get_by_role("row")
    expect(rows).to_have_count(2)
    # Columns: #, network, px, batch, run on, ...
    expect(rows.nth(1)).to_contain_text("1 ResNet-50 (1x64d) 224 1 cpu · float32 · NCHW",
                                        use_inner_text=True)

    # A second run, batch 2: the card shows the new shape and the table grows by one row.
    batch = page.get_by_label("Batch size")
    batch.fill("2")
    batch.press("Enter")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(results).to_contain_text("2×1000", timeout=90_000)
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("1 ResNet-50 (1x64d) 224 1 cpu", use_inner_text=True)
    expect(rows.nth(2)).to_contain_text("2 ResNet-50 (1x64d) 224 2 cpu", use_inner_text=True)
    expect(rows.nth(2)).not_to_contain_text("224 1 cpu", use_inner_text=True)
