"""The Train tab in headless Chromium: train a tiny network for one epoch, see its curve and
the runs table, stop a second run midway, then use the first run in Attributions."""

import json
import os
import re
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
ASSETS = Path(__file__).resolve().parents[1] / "assets"

TINY = {"cardinality": 2, "bottleneck_width": 16, "base_planes": 8, "stage_blocks": [1, 1],
        "stem": "cifar", "num_classes": 6, "image_size": 16}


def fill(page, label: str, value: str) -> None:
    # A slider's box is labelled "number input for <label>"; a number box by its label.
    name = re.compile(rf"^(number input for )?{re.escape(label)}$")
    box = page.get_by_role("spinbutton", name=name).locator("visible=true").first
    box.fill(value)
    box.press("Enter")


def test_train_watch_stop_and_use_a_run(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url + "?" + urllib.parse.urlencode({"config": json.dumps(TINY)}))
    expect(page.locator(".rx-title").first).to_contain_text("16×16 input", timeout=30_000)
    page.get_by_role("tab", name="Train").click()
    # Before anything starts: the preview (with class names) and the estimate.
    expect(page.get_by_text("**Estimate:**").or_(page.get_by_text("Estimate:"))).to_be_visible(
        timeout=60_000)
    fill(page, "Image size (px)", "16")
    fill(page, "Epochs", "1")
    fill(page, "Training images", "256")
    fill(page, "Test images", "64")
    expect(page.locator("#train-preview")).to_contain_text(
        re.compile("disc|square|triangle|cross|ring|bar"), timeout=30_000)
    page.get_by_role("button", name="Start training").click()
    progress = page.locator("#train-progress")
    expect(progress).to_contain_text("finished: 1/1 epochs, test accuracy", timeout=120_000)
    expect(page.locator("#train-curves")).to_contain_text("test accuracy")
    table = page.locator("#runs-table")
    expect(table).to_contain_text("finished")
    first_run = progress.locator(".rx-title").inner_text().split(" · ")[-1].strip()

    # A second run, stopped midway: it keeps its last whole epoch.
    fill(page, "Epochs", "40")
    page.get_by_role("button", name="Start training").click()
    expect(progress).to_contain_text(re.compile(r"epoch [2-9]/40|epoch \d\d/40"), timeout=120_000)
    page.get_by_role("button", name="Stop").click()
    expect(progress).to_contain_text(re.compile(r"stopped: \d+/40 epochs"), timeout=60_000)
    expect(table).to_contain_text("stopped")

    # Resume it: its row offers Resume; the live line gives one recent rate and the time
    # left at that rate; stopped again, the table says it was resumed.
    resume = page.locator("#runs-resume")
    expect(resume).to_be_hidden()
    table.get_by_text("stopped", exact=True).first.click()
    expect(resume).to_contain_text("Resume ", timeout=30_000)
    resume.click()
    expect(progress).to_contain_text(re.compile(r"images/s now · about .+ left at that rate"),
                                     timeout=120_000)
    if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's picture, refreshed on request
        page.screenshot(path=str(ASSETS / "screenshot-train-resume.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    expect(table).to_contain_text("stopped (resumed)", timeout=60_000)

    # The first run: its confusion matrix, then use it.
    page.get_by_label("Run", exact=True).click()
    page.get_by_role("option", name=first_run).click()
    expect(page.locator("#run-confusion")).to_contain_text("Confusion matrix on the 64 "
                                                                 "test images", timeout=60_000)
    page.get_by_role("button", name="Use this run").click()
    expect(page.locator(".rx-title").first).to_contain_text("ResNeXt-8 (2x16d, 8 base planes)")
    page.get_by_role("tab", name="Attributions").click()
    status = page.locator("#attr-weights-status")
    expect(status).to_contain_text(f"trained run {first_run}", timeout=30_000)
    expect(status).to_contain_text("disc, square, triangle, cross, ring, bar")
    context.close()
