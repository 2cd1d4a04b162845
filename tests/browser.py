"""Headless Chromium for the real-browser tests (Debian's build, driven by Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium() -> str:
    """The Chromium path; skips (locally) or fails (in CI) when it is missing."""
    if os.path.exists(CHROMIUM) or shutil.which(CHROMIUM):
        return CHROMIUM
    message = (f"Chromium not found at {CHROMIUM}: install Debian's build with "
               "`apt-get update && apt-get install -y chromium` (or set CHROMIUM_PATH)")
    if os.environ.get("CI"):
        pytest.fail(message + " — CI must run the browser tests")
    pytest.skip(message)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def browser():
    path = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(app_url)
    yield page
    context.close()
