"""The console keeps many jobs live over ONE connection: with more live jobs than the browser
has connections to the server (six), a cancel is still answered and the page's other requests
still go through. And the client reads the /v1/events stream as its contract says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, Request, Route, expect

from tests.support.servers import LiveServer
from tests.support.wait import wait_until
from tests.system.web.conftest import LONG
from tests.system.web.driver import confirm, job_row, open_console, shot, submit, upload_card

LIVE_JOBS = 8  # more than Chromium's six HTTP/1.1 connections per server
LIVE = re.compile(r"^(queued|running)$")


def test_a_cancel_is_answered_with_many_jobs_live(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    streams: list[str] = []

    def note(request: Request) -> None:
        if request.url.endswith("/events") or "/events?" in request.url:
            streams.append(request.url)

    desktop.on("request", note)
    files = []
    for n in range(LIVE_JOBS):
        (tmp_path / f"long-{n}.bin").write_bytes(b"%d" % n * 5000)
        files.append(tmp_path / f"long-{n}.bin")
    open_console(desktop, server.url)
    submit(desktop, files, "slow", steps=str(LONG["steps"]), step_seconds=str(LONG["step_seconds"]))
    cards = desktop.locator("#uploads .card")
    expect(cards).to_have_count(LIVE_JOBS)
    for n in range(LIVE_JOBS):  # every job accepted and followed live
        expect(cards.nth(n).locator(".status")).to_have_text(LIVE, timeout=30_000)
    ids = [cards.nth(n).get_attribute("data-job") or "" for n in range(LIVE_JOBS)]
    with server.api() as client:  # two run (the server's two workers), the rest wait
        running = wait_until(
            lambda: [j for j in client.jobs(status="running") if j["id"] in ids][:2]
        )
    victim = running[0]
    name = victim["input"]["filename"]
    expect(upload_card(desktop, name).locator(".status")).to_have_text("running")
    shot(desktop, "live-jobs-desktop", tmp_path)

    # A cancel from the jobs table is answered...
    job_row(desktop, victim["id"]).get_by_role("button", name="Cancel").click()
    confirm(desktop, "Cancel job")
    expect(job_row(desktop, victim["id"]).locator(".status")).to_have_text(
        "cancelled", timeout=30_000
    )
    expect(upload_card(desktop, name).locator(".status")).to_have_text("cancelled")
    # ...and so are the page's other requests: a refresh of the list, a job's details.
    with desktop.expect_response(lambda r: "/v1/jobs?" in r.url, timeout=15_000) as listed:
        desktop.click("#refresh")
    assert listed.value.ok
    for job_id in ids:
        expect(job_row(desktop, job_id)).to_be_visible()
    job_row(desktop, ids[0]).get_by_role("link", name="long-7.bin", exact=True).click()
    expect(desktop.locator("#job-panel")).to_be_visible()
    expect(desktop.locator("#job-panel")).to_contain_text(ids[0], timeout=15_000)
    # One stream for the whole page (reconnects aside), never one per job.
    assert all(url.endswith("/v1/events") for url in streams), streams
    assert 1 <= len(streams) <= 3, streams


def _job(job_id: str, status: str, progress: float) -> dict[str, Any]:
    """A job document as GET /v1/jobs/{id} writes it, for a stream made up by the test."""
    now = "2026-01-01T12:00:00Z"
    final = status in ("succeeded", "failed", "cancelled", "expired")
    return {
        "id": job_id, "status": status, "processor": "checksum", "params": {},
        "progress": progress, "attempts": 1, "max_attempts": 3, "timeout_seconds": 300.0,
        "next_attempt_at": None, "created_at": now, "started_at": now,
        "finished_at": "2026-01-01T12:00:09Z" if final else None,
        "delete_after_download": False, "error": None,
        "input": {"filename": "streamed.bin", "content_type": "application/octet-stream",
                  "size": 3 * 1024 * 1024, "sha256": "0" * 64},
        "result": None, "callback": None,
    }  # fmt: skip


def _event(kind: str, cursor: str, data: dict[str, Any], newline: str = "\n") -> str:
    return newline.join([f"id: {cursor}", f"event: {kind}", f"data: {json.dumps(data)}", "", ""])


def test_the_client_follows_the_stream_contract(server: LiveServer, desktop: Page) -> None:
    """/v1/events as its contract says, served by the test: `retry`, `ready`, `status` and
    `progress` events (CRLF line ends too), comments; a dropped stream is resumed with
    Last-Event-ID, and a change sent again, or older than what the page shows, changes
    nothing."""
    job_id = "streamed-job-1"
    asked: list[str | None] = []

    def stream(route: Route) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        if len(asked) == 1:
            body = "retry: 100\n\n" + ": keepalive\n\n" + _event("ready", "c1", {})
            body += _event("status", "c2", _job(job_id, "running", 0.25), "\r\n")
            body += _event("progress", "c3", {"id": job_id, "status": "running", "progress": 0.5})
        elif len(asked) == 2:
            body = "retry: 100\n\n"
            body += _event("progress", "c3", {"id": job_id, "status": "running", "progress": 0.5})
            body += _event("status", "c4", _job(job_id, "succeeded", 1.0))
            body += _event("status", "c2", _job(job_id, "running", 0.25))  # an old one, again
        else:
            body = "retry: 60000\n\n"  # and then quiet
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    desktop.route("**/v1/events", stream)
    open_console(desktop, server.url)
    row = job_row(desktop, job_id)
    expect(row.locator(".status")).to_have_text("succeeded", timeout=15_000)
    expect(row.locator("td.size")).to_have_text("3 MiB")
    expect(row.locator("td.duration")).to_have_text("9 s")
    assert asked[:2] == [None, "c3"], asked  # resumed after the last event it saw
    expect(desktop.locator("#live-state")).to_have_attribute("data-state", "reconnecting")
    assert row.locator(".status").inner_text() == "succeeded"  # the replayed `running` ignored


def test_progress_events_move_the_bar(server: LiveServer, desktop: Page) -> None:
    job_id = "streamed-job-2"
    sent = {"n": 0}

    def stream(route: Route) -> None:
        sent["n"] += 1
        body = "retry: 60000\n\n"
        if sent["n"] == 1:
            body += _event("ready", "c1", {}) + _event("status", "c2", _job(job_id, "running", 0))
            body += _event("progress", "c3", {"id": job_id, "status": "running", "progress": 0.42})
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    desktop.route("**/v1/events", stream)
    open_console(desktop, server.url)
    bar = job_row(desktop, job_id).get_by_role("progressbar")
    expect(bar).to_have_attribute("aria-valuenow", "42", timeout=15_000)
    expect(job_row(desktop, job_id).locator(".pct")).to_have_text("42%")


def test_a_server_without_the_stream_is_polled(server: LiveServer, desktop: Page) -> None:
    """An older server (no /v1/events): the page says so and polls, one request at a time."""
    desktop.route(
        "**/v1/events",
        lambda route: route.fulfill(
            status=404,
            headers={"Content-Type": "application/problem+json"},
            body=json.dumps({"title": "Not Found", "status": 404, "code": "not_found"}),
        ),
    )
    open_console(desktop, server.url)
    expect(desktop.locator("#live-state")).to_have_attribute("data-state", "polling")
    path = Path(server.data_dir).parent / "polled.txt"
    path.write_bytes(b"polled")
    with server.api() as client:
        job = client.submit(path, "checksum")
    expect(job_row(desktop, job["id"]).locator(".status")).to_have_text("succeeded", timeout=30_000)
