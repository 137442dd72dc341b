"""The jobs table: filtered by status and processor, a page at a time, with sizes in binary
units, and kept live: a job sent by another client shows up and moves on by itself."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.servers import LiveServer
from tests.system.web.conftest import submit_job, wait_for_status
from tests.system.web.driver import job_row, open_console, shot

PAGE_SIZE = 20  # table.js


def test_filters_and_pages(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / "many.txt").write_bytes(b"m" * 3 * 1024 * 1024)
    (tmp_path / "bad.bin").write_bytes(b"b" * 100)
    many = [submit_job(server, tmp_path / "many.txt", "checksum") for _ in range(PAGE_SIZE + 3)]
    bad = submit_job(server, tmp_path / "bad.bin", "slow", steps=1, fail=True)
    for job in many:
        wait_for_status(server, job["id"], "succeeded")
    wait_for_status(server, bad["id"], "failed")

    open_console(desktop, server.url)
    desktop.select_option("#filter-processor", "checksum")
    rows = desktop.locator("#recent tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.locator("td.processor")).to_have_text(["checksum"] * PAGE_SIZE)
    expect(rows.first.locator("td.size")).to_have_text("3 MiB")
    expect(desktop.locator("#newer")).to_be_disabled()
    desktop.click("#older")
    expect(desktop.locator("#page-number")).to_have_text("Page 2")
    expect(rows.first).not_to_have_attribute("data-job", many[-1]["id"])
    shown = {row.get_attribute("data-job") for row in rows.all()}
    desktop.click("#newer")
    expect(desktop.locator("#page-number")).to_have_text("Page 1")
    expect(rows.first).to_have_attribute("data-job", many[-1]["id"])
    assert not shown & {row.get_attribute("data-job") for row in rows.all()}

    desktop.select_option("#filter-processor", "")
    desktop.select_option("#filter-status", "failed")
    expect(rows).to_have_count(1)  # the one failed job of this module
    expect(job_row(desktop, bad["id"]).locator(".status")).to_have_text("failed")
    expect(desktop.locator("#page-number")).to_have_text("Page 1")


def test_a_job_from_another_client_shows_up_live(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    open_console(desktop, server.url)
    expect(desktop.locator("#live-state")).to_have_attribute("data-state", "live")
    (tmp_path / "elsewhere.bin").write_bytes(b"e" * 1000)
    job = submit_job(server, tmp_path / "elsewhere.bin", "slow", steps=40, step_seconds=0.1)
    row = job_row(desktop, job["id"])
    expect(row.locator(".status")).to_have_text("running", timeout=30_000)
    expect(row.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", "0")
    shot(desktop, "jobs-desktop", tmp_path)
    expect(row.locator(".status")).to_have_text("succeeded", timeout=30_000)
    expect(row.get_by_role("link", name="Download the result of elsewhere.bin")).to_be_visible()
