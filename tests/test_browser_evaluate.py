"""The Evaluate tab in headless Chromium: evaluate two methods of a tiny trained run on 16
test images, read the table (the service's numbers), the charts, and a row's best images."""

import pytest
from playwright.sync_api import expect

from explorer.evaluate import runs as service
from tests.test_evaluate_tab import reference, tiny_run

pytestmark = pytest.mark.browser

KEPT = {"Saliency": "saliency", "Grad-CAM": "gradcam"}


def test_evaluate_two_methods_and_see_the_table_and_charts(browser, app_url, app_dirs):
    folder = tiny_run(app_dirs[0] / "eval-browser-run")
    expected = reference(folder, list(KEPT.values()), 16)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_role("button", name="Refresh the list").click()
    page.get_by_label("Run", exact=True).click()
    page.get_by_role("option", name="eval-browser-run", exact=True).click()
    expect(page.locator("#eval-run-note")).to_contain_text("on shapes, 1/1 epochs")
    for label, value in service.METHOD_CHOICES:
        box = page.get_by_role("checkbox", name=label, exact=True)
        if label in KEPT:
            expect(box).to_be_checked()
        else:
            box.uncheck()
    count = page.get_by_role("spinbutton", name="Test images").first
    count.fill("16")
    count.press("Enter")
    page.get_by_role("button", name="Evaluate", exact=True).click()

    table = page.locator("#eval-table")
    expect(table).to_contain_text(service.REFERENCE_ROW, timeout=120_000)
    expect(page.locator("#eval-summary")).to_contain_text("Evaluated 16 test images")
    # The table's numbers are `evaluate`'s on the same run, rounded to 3 decimals.
    for index, want in enumerate(expected.rows):
        cells = [table.get_by_test_id(f"cell-{index}-{column}").inner_text().strip()
                 for column in range(3)]
        assert cells[0] == want["label"]
        assert float(cells[1]) == round(want["energy"], 3)
        assert float(cells[2]) == round(want["pointing"], 3)
    expect(page.locator("#eval-plot-energy")).to_contain_text("dashed: a random map")
    expect(page.locator("#eval-plot-energy")).to_contain_text("Grad-CAM")
    expect(page.locator("#eval-plot-marker_share")).to_be_hidden()  # no marker on shapes

    # A click on the Grad-CAM row shows its best and worst images.
    table.get_by_test_id("cell-1-0").click()
    expect(page.get_by_label("Method", exact=True)).to_have_value("Grad-CAM")
    expect(page.locator("#eval-best img")).to_have_count(4, timeout=30_000)
    expect(page.locator("#eval-worst img")).to_have_count(4)
    context.close()
