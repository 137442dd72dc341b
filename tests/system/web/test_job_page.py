"""The job panel (#/jobs/ID): timeline, attempts, parameters, input and result with their
digests, download, a signed link, cancel and delete behind confirmations; by keyboard too."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, Route, expect

from tests.support.servers import LiveServer
from tests.system.web.conftest import LONG, submit_job, wait_for_status
from tests.system.web.driver import confirm, job_row, open_console, shot


def test_a_finished_job_in_full(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    data = b"n,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(5000))
    (tmp_path / "squares.csv").write_bytes(data)
    job = submit_job(server, tmp_path / "squares.csv", "compress", format="gzip", level=9)
    job = wait_for_status(server, job["id"], "succeeded")

    desktop.goto(f"{server.url}/#/jobs/{job['id']}")  # a link to the panel opens it
    panel = desktop.locator("#job-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("#job-title")).to_have_text("squares.csv")
    expect(panel.locator("#job-title")).to_be_focused()
    expect(panel.locator(".status").first).to_have_text("succeeded")
    expect(panel.locator('.timeline li[data-done="true"]')).to_have_count(3)
    expect(panel.locator(".attempts li")).to_have_count(1)
    expect(panel.locator(".attempts li")).to_contain_text("Attempt 1")
    expect(panel).to_contain_text("format")
    expect(panel).to_contain_text(job["input"]["sha256"])
    expect(panel).to_contain_text(job["result"]["sha256"])
    shot(desktop, "job-panel-desktop", tmp_path, full_page=False)

    with desktop.expect_download() as info:
        panel.locator("a.download").click()
    saved = tmp_path / "saved.gz"
    info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == job["result"]["sha256"]

    panel.get_by_role("button", name="Copy signed link").click()
    link = panel.get_by_role("textbox", name="Signed link to the result")
    expect(link).to_be_visible()
    url = link.input_value()
    assert url.startswith(server.url + "/")
    fetched = httpx.get(url, timeout=30)  # no key needed
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == job["result"]["sha256"]

    desktop.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(desktop).not_to_have_url(re.compile("#/jobs/"))  # closed is a step in the history


def test_a_failed_jobs_attempts_and_error(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    (tmp_path / "doomed.bin").write_bytes(b"d" * 1000)
    job = submit_job(server, tmp_path / "doomed.bin", "slow", steps=1, fail=True)
    wait_for_status(server, job["id"], "failed")
    open_console(desktop, server.url)
    row = job_row(desktop, job["id"])
    expect(row.locator("td.error")).to_contain_text("asked to fail (asked_to_fail)")
    row.get_by_role("link", name="doomed.bin", exact=True).click()
    panel = desktop.locator("#job-panel")
    expect(panel.locator(".error").first).to_contain_text("asked to fail")
    expect(panel.locator(".attempts li").first).to_contain_text("asked_to_fail")
    expect(panel.locator("a.download")).to_have_count(0)
    expect(panel.get_by_role("button", name="Copy signed link")).to_have_count(0)


def test_without_the_attempts_route_the_job_says_what_it_knows(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    """An older server (no /attempts): the panel shows the job's own count and last error."""
    (tmp_path / "older.bin").write_bytes(b"o" * 1000)
    job = submit_job(server, tmp_path / "older.bin", "slow", steps=1, fail=True)
    wait_for_status(server, job["id"], "failed")

    def missing(route: Route) -> None:
        body = {"title": "Not Found", "status": 404, "code": "not_found", "detail": "Not Found"}
        route.fulfill(status=404, content_type="application/problem+json", body=json.dumps(body))

    desktop.route("**/attempts", missing)
    desktop.goto(f"{server.url}/#/jobs/{job['id']}")
    panel = desktop.locator("#job-panel")
    expect(panel).to_contain_text("1 of at most")
    expect(panel).to_contain_text("asked to fail (asked_to_fail)")


def test_cancel_and_delete_ask_first(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / "endless.bin").write_bytes(b"e" * 1000)
    job = submit_job(server, tmp_path / "endless.bin", "slow", **LONG)
    wait_for_status(server, job["id"], "running")
    desktop.goto(f"{server.url}/#/jobs/{job['id']}")
    panel = desktop.locator("#job-panel")
    expect(panel.locator(".stats")).to_contain_text("elapsed")

    # Escape on the confirmation keeps the job (and the panel).
    panel.get_by_role("button", name="Cancel job").click()
    expect(desktop.locator("#confirm")).to_be_visible()
    expect(desktop.locator("#confirm-keep")).to_be_focused()
    desktop.keyboard.press("Escape")
    expect(desktop.locator("#confirm")).to_be_hidden()
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Cancel job")).to_be_focused()
    assert server.api().job(job["id"])["status"] == "running"

    panel.get_by_role("button", name="Cancel job").click()
    confirm(desktop, "Cancel job")
    expect(panel.locator(".status").first).to_have_text("cancelled", timeout=30_000)
    expect(desktop.locator("#announcer")).to_contain_text("endless.bin")

    panel.get_by_role("button", name="Delete job").click()
    confirm(desktop, "Delete job")
    expect(panel).to_be_hidden()
    expect(job_row(desktop, job["id"])).to_have_count(0)
    with server.api() as client:
        assert job["id"] not in [j["id"] for j in client.jobs(limit=500)]


def test_the_panel_by_keyboard(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_bytes(b"keyboard " * 100)
    job = submit_job(server, tmp_path / "keys.txt", "checksum")
    wait_for_status(server, job["id"], "succeeded")
    open_console(desktop, server.url)
    details = job_row(desktop, job["id"]).get_by_role("link", name="Details of keys.txt")
    details.focus()
    desktop.keyboard.press("Enter")
    panel = desktop.locator("#job-panel")
    expect(panel).to_be_visible()
    expect(desktop.locator("#job-title")).to_be_focused()
    # Tab goes through the panel's controls (the page behind it is inert) to its last button.
    reached = []
    for _ in range(4):
        desktop.keyboard.press("Tab")
        reached.append(desktop.evaluate("document.activeElement.textContent"))
    assert reached[0] == "✕" and reached[1].startswith("Download "), reached
    assert reached[2:] == ["Copy signed link", "Delete job"], reached
    desktop.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(details).to_be_focused()  # back where the keyboard was
