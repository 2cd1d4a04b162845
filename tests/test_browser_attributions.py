"""What a person sees: upload a photo in the Attributions tab, run Grad-CAM, get an overlay
and five predictions (headless Chromium; skips locally without it, fails in CI)."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from explorer.services.images import sample_images

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def use_small_input(page, side: int = 64) -> None:
    """The Architecture tab's input resolution, so the network runs in a blink."""
    box = page.get_by_label("number input for Input resolution (pixels)")
    box.fill(str(side))
    box.press("Enter")
    expect(page.locator(".rx-title")).to_contain_text(f"{side}×{side} input", timeout=20_000)


def test_upload_photo_and_run_gradcam(page, tmp_path):
    expect(page.locator(".rx-cards")).to_contain_text("25,028,904", timeout=30_000)
    use_small_input(page)
    page.get_by_role("tab", name="Attributions").click()
    expect(page.get_by_text("Untrained weights.").first).to_be_visible()

    # Upload through the image component's file input, as a file chooser would.
    page.locator("#attr-image input[type=file]").set_input_files(str(sample_images()[0]))
    expect(page.locator("#attr-image img")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Explain", exact=True).click()

    overlay = page.locator("#attr-overlay img")
    expect(overlay).to_be_visible(timeout=120_000)
    assert overlay.evaluate("img => img.naturalWidth") == 64  # what the network saw
    top5 = page.locator("#attr-top5")
    expect(top5.locator(".confidence-set").first).to_be_visible()
    expect(page.get_by_text("deletion-curve AUC")).to_be_visible()
    assert top5_rows(top5) == 5

    page.wait_for_timeout(500)
    target = ASSETS / "screenshot-attributions.png" if os.environ.get("UPDATE_SCREENSHOTS") \
        else tmp_path / "attributions.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 50_000


def top5_rows(top5) -> int:
    """Rows of the Top-5 label: each shows a class name and a percentage."""
    return top5.locator(".confidence-set").count()
