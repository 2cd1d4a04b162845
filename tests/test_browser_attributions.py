"""What a person sees on the Attributions tab, in headless Chromium (skips locally without it,
fails in CI): a map with its colour bar, crop and top-5; errors that leave the page as it
was; status lines that follow the network; Cancel; the weights panel; dark mode."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from explorer.shared.images import sample_images

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parent.parent / "assets"
EXPLAIN_TIMEOUT = 120_000


def use_small_input(page, side: int = 64) -> None:
    """The Architecture tab's input resolution, so the network runs in a blink."""
    box = page.get_by_label("number input for Input resolution (pixels)")
    box.fill(str(side))
    box.press("Enter")
    expect(page.locator(".rx-title")).to_contain_text(f"{side}×{side} input", timeout=20_000)


def open_tab_with_photo(page, side: int = 64) -> None:
    expect(page.locator(".rx-cards")).to_contain_text("25,028,904", timeout=30_000)
    use_small_input(page, side)
    page.get_by_role("tab", name="Attributions").click()
    page.locator("#attr-image input[type=file]").set_input_files(str(sample_images()[0]))
    expect(page.locator("#attr-crop img")).to_be_visible(timeout=20_000)


def explain(page, expected: str) -> None:
    """Press Explain and wait for a summary saying `expected` (which the one before did not:
    the summary's box also shows Gradio's "processing" timer while it runs)."""
    summary = page.locator("#attr-summary")
    page.get_by_role("button", name="Explain", exact=True).click()
    expect(summary).to_contain_text(expected, timeout=EXPLAIN_TIMEOUT)
    expect(summary).to_contain_text("deletion-curve AUC")
    expect(summary).not_to_contain_text("processing", timeout=EXPLAIN_TIMEOUT)


def toast(page, text: str) -> None:
    expect(page.locator(".toast-body").filter(has_text=text).first).to_be_visible(timeout=20_000)


def no_error_badges(page) -> None:
    assert page.locator(".error").count() == 0  # Gradio's red "Error" over an output


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Enter")


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_map_errors_stale_status_and_cancel(page, tmp_path):
    screenshot = bool(os.environ.get("UPDATE_SCREENSHOTS"))
    open_tab_with_photo(page, 224 if screenshot else 64)
    expect(page.get_by_text("Untrained weights.").first).to_be_visible()
    explain(page, "Grad-CAM for")

    overlay = page.locator("#attr-overlay img")
    expect(overlay).to_be_visible()
    # 64 px is enlarged 4× without smoothing (small overlays, towards 288 px); 224 px as it is.
    assert overlay.evaluate("img => img.naturalWidth") == (224 if screenshot else 256)
    # Top-5: five rows, each with a percentage an untrained network's near-ties can be
    # compared by (two significant figures or more), never a bare "0 %".
    rows = page.locator("#attr-top5 .rx-top-row")
    expect(rows).to_have_count(5)
    shown = [re.search(r"([0-9.]+) %", text).group(1) for text in rows.all_inner_texts()]
    assert all(float(value) > 0 and len(value.replace(".", "").lstrip("0")) >= 2
               for value in shown), shown
    # The colour bar states its scale; the crop the map covers is said and outlined.
    expect(page.locator("#attr-colour-bar")).to_contain_text("98th percentile")
    assert re.search(r"0\s+\d", page.locator("#attr-colour-bar").inner_text())
    expect(page.locator("#attr-summary")).to_contain_text("centre crop")

    if screenshot:
        page.wait_for_timeout(800)
        page.screenshot(path=str(ASSETS / "screenshot-attributions.png"), full_page=True)

    # A refused value: its message says what is wrong; the map and every control stay.
    src = overlay.get_attribute("src")
    target = page.get_by_label("Target class")
    target.fill("unicorn")
    target.press("Enter")
    page.get_by_role("button", name="Explain", exact=True).click()
    toast(page, "no class named 'unicorn'")
    assert overlay.get_attribute("src") == src
    expect(target).to_have_value("unicorn")
    no_error_badges(page)
    target.fill("predicted class")
    target.press("Enter")
    # Occlusion's stride ends at its window (Captum refuses a longer one).
    page.get_by_text("Method parameters").click()
    set_number(page, "Occlusion window", 8)
    # The stride's maximum follows the window through a server event: wait for it, or on a
    # loaded machine the browser clamps 112 to the old maximum (32) first.
    expect(page.get_by_label("number input for Occlusion stride")).to_have_attribute(
        "max", "8", timeout=20_000)
    set_number(page, "Occlusion stride", 112)
    page.get_by_label("number input for Occlusion stride").blur()
    expect(page.get_by_label("number input for Occlusion stride")).to_have_value("8")

    # The status line and the summary follow the Architecture tab's network.
    page.get_by_role("tab", name="Architecture").click()
    choose(page, "Preset", "resnet50")
    expect(page.locator(".rx-title")).to_contain_text("ResNet-50 (1x64d)", timeout=20_000)
    use_small_input(page)
    page.get_by_role("tab", name="Attributions").click()
    expect(page.locator("#attr-weights-status")).to_contain_text("for ResNet-50 (1x64d) at 64×64")
    explain(page, "ResNet-50 (1x64d), random (seed 0)")

    # Cancel a slow run, with a grid waiting behind it: one message shows, the run stops
    # (its earlier map stays), the grid never starts, and the app keeps serving.
    src = overlay.get_attribute("src")
    for close in page.locator(".toast-close").all():  # earlier steps' messages
        try:
            close.click(timeout=2000)
        except PlaywrightError:
            pass  # it closed by itself meanwhile
    expect(page.locator(".toast-body")).to_have_count(0)
    choose(page, "Method", "Integrated Gradients")
    set_number(page, "IG steps", 512)
    set_number(page, "Internal batch size", 1)
    page.get_by_role("button", name="Explain", exact=True).click()
    # Out of the queue and running (IG at 512 steps, one per pass, runs for a minute).
    expect(page.locator("#attr-overlay")).to_contain_text("processing", timeout=60_000)
    page.get_by_text("Grid: methods or configs side by side").click()
    page.get_by_role("button", name="Explain side by side").click()
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Cancel").click()
    toast(page, "Cancelled: the attribution was stopped")
    expect(page.locator("#attr-overlay")).not_to_contain_text("processing", timeout=30_000)
    # Its turn came (nothing else waits) and it ended at once: no longer queued or running,
    # and no table of maps.
    expect(page.locator("#attr-grid")).not_to_contain_text(re.compile("processing|queue"),
                                                           timeout=30_000)
    expect(page.locator("#attr-grid-summary")).to_have_text("")
    assert overlay.get_attribute("src") == src
    # One message, Cancel's (the work's own end says nothing more), and no error.
    expect(page.locator(".toast-body")).to_have_count(1)
    no_error_badges(page)
    page.get_by_text("Grid: methods or configs side by side").click()
    choose(page, "Method", "Saliency (gradient)")
    explain(page, "Saliency (gradient) for")


def test_weights_panel_uploads_and_dark_mode(browser, app_url, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url + "?__theme=dark")
    try:
        expect(page.locator(".rx-cards")).to_contain_text("25,028,904", timeout=30_000)
        use_small_input(page)
        page.get_by_role("tab", name="Attributions").click()
        status = page.locator("#attr-weights-status")

        # A choice not yet applied is said to be so; only fitting weights are offered.
        page.get_by_label("ImageNet (torchvision)").check()
        expect(status).to_contain_text("Not applied yet")
        expect(status).to_contain_text("Using random (seed 0)")
        page.get_by_label("torchvision ImageNet weights").click()
        assert sorted(text.split("\n")[-1] for text in page.get_by_role("option").all_inner_texts()) == [
            "resnext50_32x4d.IMAGENET1K_V1", "resnext50_32x4d.IMAGENET1K_V2"]
        page.keyboard.press("Escape")

        # A text file as a checkpoint: "not a checkpoint", the radio back on Random.
        page.get_by_label("Upload a checkpoint (.pth/.pt)").check()
        notes = tmp_path / "notes.pth"
        notes.write_text("just some text, 23 byte")
        page.locator("#attr-checkpoint input[type=file]").set_input_files(str(notes))
        expect(page.locator("#attr-checkpoint")).to_contain_text("23.0 B")
        page.get_by_role("button", name="Use these weights").click()
        toast(page, "notes.pth could not be read as a checkpoint: it is not one")
        expect(page.get_by_label("Random (seed N)")).to_be_checked()
        expect(status).to_contain_text("Not loaded")
        expect(status).to_contain_text("Using random (seed 0)")
        no_error_badges(page)

        # A file that is no image is refused on upload, not shown as a broken thumbnail.
        fake = tmp_path / "fake.png"
        fake.write_text("hello, not an image")
        page.locator("#attr-image input[type=file]").set_input_files(str(fake))
        toast(page, "fake.png is not an image this app can read")
        expect(page.locator("#attr-image img")).to_have_count(0)

        # Dark mode: the deletion chart has no white card and grey (not black) text.
        page.locator("#attr-samples img").nth(1).click()  # a sample photo
        expect(page.locator("#attr-crop img")).to_be_visible(timeout=20_000)
        # ImageNet chosen but not applied: Explain says which weights it used.
        page.get_by_label("ImageNet (torchvision)").check()
        explain(page, "Grad-CAM for")
        toast(page, "The weights panel's choice is not applied: this map uses random (seed 0)")
        expect(page.locator("#attr-summary")).to_contain_text("random (seed 0)")
        chart = page.locator("#attr-deletion .main-svg").first
        expect(chart).to_be_visible()
        assert chart.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
        title = page.locator("#attr-deletion .gtitle").first
        assert title.evaluate("e => getComputedStyle(e).fill") == "rgb(124, 130, 140)"
        assert page.evaluate("document.body.classList.contains('dark')")  # the page is dark
    finally:
        context.close()


def test_a_trained_runs_test_image_with_its_object_outlined(browser, app_url, app_dirs):
    """Use a run (trained here, into the app's runs directory) from the Train tab; explain
    one of its test images: the dataset's classes, the whole 16 px image, the object's
    outline and the share of the map inside it."""
    import resnext
    from resnext import data, train

    run_id = "attr-shapes-run"
    train.fit(resnext.ResNeXtConfig(cardinality=2, bottleneck_width=16, base_planes=8,
                                    stage_blocks=(1, 1), stem="cifar", num_classes=6),
              data.shapes(n_train=256, n_test=64, image_size=16), epochs=1, batch_size=64,
              out_dir=app_dirs[0] / run_id)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    try:
        page.get_by_role("tab", name="Train").click()
        page.get_by_label("Run", exact=True).click()
        page.get_by_role("option", name=run_id).click()
        page.get_by_role("button", name="Use this run").click()
        page.get_by_role("tab", name="Attributions").click()
        status = page.locator("#attr-weights-status")
        expect(status).to_contain_text(f"trained run {run_id}", timeout=30_000)
        # The run's first test image, once the samples are the run's (they follow the
        # weights in an event of their own: clicking the old ones as they go loses the click).
        first = page.locator("#attr-samples img[src*='test_000']")
        expect(first).to_be_visible(timeout=30_000)
        first.click()
        expect(page.locator("#attr-crop img")).to_be_visible(timeout=20_000)
        explain(page, "inside it")
        summary = page.locator("#attr-summary")
        expect(summary).to_contain_text("The map covers the whole image")
        expect(summary).to_contain_text(re.compile(r"\d+ % of the positive attribution lies inside"))
        expect(summary).to_contain_text(re.compile(r"(disc|square|triangle|cross|ring|bar) \(class"))
        overlay = page.locator("#attr-overlay img")
        assert overlay.evaluate("img => img.naturalWidth") == 288  # 16 px shown 18×, crisp
        no_error_badges(page)
        if os.environ.get("UPDATE_SCREENSHOTS"):
            for close in page.locator(".toast-close").all():  # "Using run ..." over the summary
                close.click()
            page.wait_for_timeout(800)
            page.screenshot(path=str(ASSETS / "screenshot-attributions-run.png"), full_page=True)
    finally:
        context.close()
