"""Accounts in headless Chromium (issue 20): the login page; the runs table's owner and size
columns and total; a row clicked, Delete, the confirmation naming the run and its size;
someone else's run refused; the owner's deleted (its folder gone, the other kept)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from explorer import accounts
from resnext.train import runs
from resnext.units import byte_size

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "")) if os.environ.get("SCREENSHOT_DIR") else None
MODEL = {"cardinality": 2, "bottleneck_width": 16, "base_planes": 8, "stage_blocks": [1, 1],
         "stem": "cifar", "num_classes": 6}


def finished_run(runs_dir: Path, run_id: str, owner: str, weights_bytes: int) -> Path:
    """A finished run folder as the app and the engine leave it (weights as filler bytes)."""
    folder = runs.queue_run(runs_dir, run_id, owner, {"config": MODEL, "data": "shapes"}, 2, "cpu")
    runs.write_config(folder, {"model": MODEL, "data": {"name": "shapes"}, "epochs": 2,
                               "environment": {"device": "cpu"}})
    runs.write_metrics(folder, [{"epoch": e, "test_accuracy": 0.4 + e / 10, "seconds": 3.0}
                                for e in (1, 2)])
    runs.write_status(folder, runs.status_record("finished", "2026-03-01T10:00:00Z", 2, "cpu",
                                                 ended=True, pid=None))
    runs.model_file(folder).write_bytes(b"\0" * weights_bytes)
    return folder


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    from conftest import _free_port
    from explorer.app import create_app, launch_options
    from explorer.context import AppOptions

    root = tmp_path_factory.mktemp("browser-lab")
    path = root / "users.json"
    accounts.write_users(path, {"alice": accounts.hash_password("alice-pw"),
                                "bob": accounts.hash_password("bob-pw")})
    finished_run(root / "runs", "20260301-100000-c2d16-8-shapes", "alice", 1_234_567)
    finished_run(root / "runs", "20260302-100000-c2d16-8-shapes", "bob", 2_000_000)
    options = AppOptions(runs_dir=root / "runs", data_dir=root / "data",
                         accounts=accounts.Accounts(path))
    demo = create_app(options)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                quiet=True, **launch_options(options))
    yield f"http://127.0.0.1:{port}/", root / "runs"
    demo.close()


def row_cell(table, run_id: str):
    """The run-id cell of a run's row in the runs table (a click picks the row)."""
    return table.locator("[data-testid^='cell-'][data-testid$='-0']").filter(has_text=run_id)


def sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    expect(page.get_by_text("sign in with the account")).to_be_visible(timeout=30_000)
    if SCREENSHOTS:
        page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("tab", name="Train")).to_be_visible(timeout=60_000)


def test_sign_in_see_owners_and_sizes_and_delete_with_a_confirmation(browser, lab_url):
    url, runs_dir = lab_url
    alices, bobs = "20260301-100000-c2d16-8-shapes", "20260302-100000-c2d16-8-shapes"
    alice_size = byte_size(runs.folder_size(runs_dir / alices))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    sign_in(page, url, "alice", "alice-pw")
    page.get_by_role("tab", name="Train").click()
    expect(page.locator("#runs-who")).to_contain_text("Signed in as alice")
    table = page.locator("#runs-table")
    expect(table).to_contain_text("owner")
    expect(table).to_contain_text(alice_size)  # 1.2 MB
    total = byte_size(runs.folder_size(runs_dir / alices) + runs.folder_size(runs_dir / bobs))
    expect(page.locator("#runs-total")).to_contain_text(f"2 runs · {total} on disk")
    # Bob's run: offered, and refused with the reason.
    row_cell(table, bobs).click()
    page.locator("#runs-delete").click()
    expect(page.get_by_text(f"{bobs} belongs to bob: only its owner or an admin can delete it")
           ).to_be_visible(timeout=20_000)
    expect(page.locator("#runs-confirm")).to_be_hidden()
    # Her own: the confirmation names it and its size; Cancel keeps it, Confirm deletes it.
    row_cell(table, alices).click()
    page.locator("#runs-delete").click()
    confirm = page.get_by_role("button", name=f"Confirm: delete {alices} ({alice_size})")
    expect(confirm).to_be_visible(timeout=20_000)
    expect(page.locator("#runs-confirm")).to_contain_text(f"Delete {alices} ({alice_size}, alice's")
    if SCREENSHOTS:
        page.locator("#runs-table").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "runs-delete-confirmation.png"), full_page=False)
    page.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    assert (runs_dir / alices).is_dir()
    page.locator("#runs-delete").click()
    confirm.click()
    expect(page.get_by_text(re.compile(rf"Deleted {alices} \("))).to_be_visible(timeout=20_000)
    expect(table).not_to_contain_text(alices)
    assert not (runs_dir / alices).exists() and (runs_dir / bobs).is_dir()
    expect(page.locator("#runs-total")).to_contain_text("1 run ·")
    context.close()
