"""What a person sees: the Architecture tab in headless Chromium."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

import resnext

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def glance(page):
    return page.locator(".rx-cards")


def test_choose_preset_then_move_cardinality(page):
    expect(glance(page)).to_contain_text("25,028,904", timeout=30_000)  # first paint
    page.get_by_label("Preset").click()
    page.get_by_role("option", name="resnext101_32x8d", exact=True).click()
    expect(glance(page)).to_contain_text("88,791,336", timeout=20_000)
    expect(glance(page)).to_contain_text("16.41 GMACs")
    expect(page.locator(".rx-title")).to_contain_text("ResNeXt-101 (32x8d)")
    # The stage table: stage 3 of ResNeXt-101 has 23 blocks, 1,024 channels out at 14×14,
    # group width C·d = 32 × 32 (paper Table 1's layout, d doubling per stage).
    stages = page.locator(".rx-table").first.get_by_role("row")
    expect(stages.filter(has_text="layer3")).to_contain_text("layer3 14×14 1,024 1,024 23",
                                                              use_inner_text=True)

    # Move the cardinality slider one step with the keyboard, as a person would.
    slider = page.get_by_role("slider", name=re.compile("Cardinality"))
    slider.focus()
    slider.press("ArrowRight")
    expect(glance(page)).not_to_contain_text("88,791,336", timeout=20_000)
    expect(page.locator(".rx-title")).to_contain_text("ResNeXt-101 (33x8d)")
    expect(page.get_by_label("Preset")).to_have_value("custom")
    # The new exact count, from a built (meta-device) model rather than the app's arithmetic.
    wider = resnext.PRESETS["resnext101_32x8d"].replace(cardinality=33)
    params = sum(p.numel() for p in resnext.build_model(wider, device="meta").parameters())
    expect(glance(page)).to_contain_text(f"{params:,}")
    expect(stages.filter(has_text="layer3")).to_contain_text("layer3 14×14 1,024 1,056 23",
                                                              use_inner_text=True)

    if os.environ.get("UPDATE_SCREENSHOTS"):  # the README's picture, refreshed on request
        page.wait_for_timeout(1000)  # let the plot finish drawing
        page.screenshot(path=str(ASSETS / "screenshot-architecture.png"), full_page=True)


def test_a_dropdown_pick_runs_once_and_never_undoes_the_next_edit(page):
    """Gradio's dropdown fires `input` on the pick and again on the blur that follows it;
    the preset (which rewrites every control) answers the pick alone, so a resolution typed
    once the preset shows stays (a second apply_preset, late under load, used to undo it)."""
    expect(glance(page)).to_contain_text("25,028,904", timeout=30_000)
    preset_id = page.evaluate(
        "() => window.gradio_config.components.find(c => c.props.label === 'Preset').id")
    joins: list[int] = []

    def record(request) -> None:
        if request.method == "POST" and "/queue/join" in request.url:
            body = request.post_data_json or {}
            if body.get("trigger_id") == preset_id:
                joins.append(body["fn_index"])

    page.on("request", record)
    page.get_by_label("Preset").click()
    page.get_by_role("option", name="resnet50", exact=True).click()
    expect(page.locator(".rx-title")).to_contain_text("ResNet-50 (1x64d)", timeout=20_000)
    box = page.get_by_label("number input for Input resolution (pixels)")
    box.fill("64")
    box.press("Enter")
    expect(page.locator(".rx-title")).to_contain_text("ResNet-50 (1x64d) · 64×64 input",
                                                      timeout=20_000)
    page.wait_for_timeout(3000)  # anything still queued from the pick would land by now
    expect(page.locator(".rx-title")).to_contain_text("64×64 input")
    expect(box).to_have_value("64")
    # apply_preset, then the analysis it leads to: each sent once.
    assert len(joins) == 2 and len(set(joins)) == 2, f"one pick sent {joins}"

    # Two edits in a row (a slider step, then a typed resolution) both land, in order: the
    # first one's answer never puts 64 back in the box.
    slider = page.get_by_role("slider", name=re.compile("Cardinality"))
    slider.focus()
    slider.press("ArrowRight")
    box.fill("96")
    box.press("Enter")
    expect(page.locator(".rx-title")).to_contain_text("(2x64d) · 96×96 input", timeout=20_000)
    page.wait_for_timeout(2000)
    expect(page.locator(".rx-title")).to_contain_text("(2x64d) · 96×96 input")
    expect(box).to_have_value("96")
