"""The Study tab in headless Chromium: Table 2 for a tiny network, its estimate, then a tiny
study started from the page, whose trial table fills as the worker process trains."""

import json
import os
import re
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TINY = {"cardinality": 2, "bottleneck_width": 16, "base_planes": 8, "stage_blocks": [1, 1],
        "stem": "cifar", "num_classes": 6, "image_size": 16}
# The README's picture (UPDATE_SCREENSHOTS=1): more seeds and data, so the intervals mean
# something; the test itself: the smallest study there is.
PICTURE = bool(os.environ.get("UPDATE_SCREENSHOTS"))
SETTINGS = ({"Seeds": "0,1,2", "Training images": "600", "Test images": "200", "Epochs": "4",
             "Images scored": "32"} if PICTURE else
            {"Seeds": "0,1", "Training images": "64", "Test images": "32", "Epochs": "1",
             "Images scored": "8"})


def textbox(page, label: str):
    """A text box by its label (its name goes on with the info line under the label)."""
    name = re.compile(rf"^{re.escape(label)}( |$)")
    return page.get_by_role("textbox", name=name).locator("visible=true").first


def fill(page, label: str, value: str) -> None:
    name = re.compile(rf"^(number input for )?{re.escape(label)}$")
    box = page.get_by_role("spinbutton", name=name).locator("visible=true")
    box = box if box.count() else textbox(page, label)
    box.first.fill(value)
    box.first.press("Enter")


def test_table2_estimate_and_a_tiny_study_from_the_page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url + "?" + urllib.parse.urlencode({"config": json.dumps(TINY)}))
    expect(page.locator(".rx-title").first).to_contain_text("16×16 input", timeout=30_000)
    page.get_by_role("tab", name="Study").click()
    fill(page, "Image size (px)", "16")
    page.get_by_role("button", name="Table 2: cardinality at equal complexity").click()
    # The network in hand keeps its cost at C = 1, 2, 4 only (base_planes 8: d >= 8).
    expect(page.locator("#study-table2-note")).to_contain_text("Left out: C = 8",
                                                               timeout=60_000)
    expect(textbox(page, "Values")).to_have_value("1,2,4")
    expect(page.locator("#study-estimate")).to_contain_text("Estimate: 9 trials",
                                                            timeout=120_000)
    expect(page.locator("#study-plan")).to_contain_text("ResNeXt-8 (4x8d, 8 base planes)")

    if not PICTURE:
        fill(page, "Values", "1,2")
    for label, value in SETTINGS.items():
        fill(page, label, value)
    fill(page, "Study name", "browser-picture" if PICTURE else "browser-tiny")
    page.locator("#study-methods").get_by_label("Saliency").uncheck()
    # The estimate was for other settings: the page says so, and a new one replaces it.
    estimate = page.locator("#study-estimate")
    expect(estimate).to_contain_text("The settings changed since the last estimate")
    if PICTURE:
        page.get_by_role("button", name="Check and estimate").click()
        expect(estimate).to_contain_text("Estimate: 9 trials", timeout=120_000)
    page.get_by_role("button", name="Create and start").click()
    trials = page.locator("#study-trials")
    expect(trials).to_contain_text("value=1 seed=0", timeout=60_000)
    done = 9 if PICTURE else 4
    expect(page.locator("#study-summary")).to_contain_text(
        f"{done} trials: {done} complete", timeout=1_200_000 if PICTURE else 240_000)
    expect(trials).to_contain_text("COMPLETE")
    expect(page.locator("#study-accuracy")).to_contain_text("Test accuracy vs cardinality")
    expect(page.locator("#study-points")).to_contain_text("ResNet-8 (1x")
    if PICTURE:
        page.wait_for_timeout(1500)  # let the plots finish drawing
        page.screenshot(path=str(ASSETS / "screenshot-study.png"), full_page=True)
    context.close()
