"""What a person sees: the Architecture tab in headless Chromium."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def glance(page):
    return page.locator(".rx-cards")


def test_choose_preset_then_move_cardinality(page, tmp_path):
    expect(glance(page)).to_contain_text("25,028,904", timeout=30_000)  # first paint
    page.get_by_label("Preset").click()
    page.get_by_role("option", name="resnext101_32x8d", exact=True).click()
    expect(glance(page)).to_contain_text("88,791,336", timeout=20_000)
    expect(glance(page)).to_contain_text("16.41 GMACs")
    expect(page.locator(".rx-title")).to_contain_text("ResNeXt-101 (32x8d)")

    # Move the cardinality slider one step with the keyboard, as a person would.
    slider = page.get_by_role("slider", name=re.compile("Cardinality"))
    slider.focus()
    slider.press("ArrowRight")
    expect(glance(page)).not_to_contain_text("88,791,336", timeout=20_000)
    expect(page.locator(".rx-title")).to_contain_text("ResNeXt-101 (33x8d)")
    expect(page.get_by_label("Preset")).to_have_value("custom")

    page.wait_for_timeout(1000)  # let the plot finish drawing
    target = ASSETS / "screenshot-architecture.png" if os.environ.get("UPDATE_SCREENSHOTS") \
        else tmp_path / "architecture.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 50_000
