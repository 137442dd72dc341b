"""A list read before a change can answer after the live stream has shown it: the page keeps
the newer state. The job JSON has no version, so the page orders a job's states by what it
carries (`started_at`, the phase within an attempt, progress): these jobs, made up by the test,
arrive first from the stream and then, older or newer, from a list held back until then."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.support.servers import LiveServer
from tests.support.wait import wait_until
from tests.system.web.driver import job_row, open_console

FIRST = "2026-01-01T12:00:01.000100Z"  # the first attempt's start
SECOND = "2026-01-01T12:00:01.000200Z"  # the second's, a tenth of a millisecond later
RETRY = {"code": "flaky", "message": "flaky run 1"}


def _job(
    job_id: str, status: str, attempts: int, started_at: str | None, **more: Any
) -> dict[str, Any]:
    """A job document as the API writes it."""
    final = status in ("succeeded", "failed", "cancelled", "expired")
    return {
        "id": job_id, "status": status, "processor": "checksum", "params": {},
        "progress": 1.0 if final else 0.0, "attempts": attempts, "max_attempts": 3,
        "timeout_seconds": 300.0, "next_attempt_at": None,
        "created_at": "2026-01-01T12:00:00Z", "started_at": started_at,
        "finished_at": "2026-01-01T12:00:09Z" if final else None,
        "delete_after_download": False, "error": None,
        "input": {"filename": f"{job_id}.bin", "content_type": "application/octet-stream",
                  "size": 1024, "sha256": "0" * 64},
        "result": None, "callback": None, **more,
    }  # fmt: skip


# Each job: what the stream shows first, then what the late list says, and what the page must
# show after both ("queued"/"running" and the progress bar's percent).
STREAMED = {
    "never-started": _job("never-started", "running", 1, FIRST, progress=0.3),
    "retried": _job("retried", "running", 2, SECOND, progress=0.1),
    "moved-on": _job("moved-on", "running", 1, FIRST, progress=0.25),
    "put-back": _job("put-back", "running", 1, FIRST, progress=0.4),
    "late-progress": _job("late-progress", "running", 1, FIRST, progress=0.6),
}
LISTED = [
    _job("never-started", "queued", 0, None),  # older: before its first start
    # older: waiting for the retry that the stream has already seen start
    _job("retried", "queued", 1, FIRST, error=RETRY, next_attempt_at=SECOND),
    _job("moved-on", "running", 1, FIRST, progress=0.25),  # older than the progress event
    # newer: the server stopped the run to shut down (the attempt is not counted)
    _job("put-back", "queued", 0, FIRST, progress=0.4),
    # newer: the attempt failed and waits for a retry
    _job("late-progress", "queued", 1, FIRST, progress=0.6, error=RETRY),
    _job("listed-only", "succeeded", 1, FIRST),  # says the list has been drawn
]
SHOWN = {
    "never-started": ("running", "30%"),
    "retried": ("running", "10%"),
    "moved-on": ("running", "50%"),
    "put-back": ("queued", None),
    "late-progress": ("queued", None),
}


def _event(kind: str, cursor: int, data: dict[str, Any]) -> str:
    return f"id: c{cursor}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"


def _progress(job_id: str, value: float) -> dict[str, Any]:
    return {"id": job_id, "status": "running", "progress": value}


def _wait_for(page: Page, held: list[Route], count: int) -> None:
    """Until the page has made `count` of the requests `held` keeps."""

    def made() -> bool:
        page.wait_for_timeout(20)  # Playwright hands requests to the handlers only meanwhile
        return len(held) >= count

    wait_until(made, message=f"the page made fewer than {count} such requests")


def test_a_late_answer_never_takes_a_job_back(server: LiveServer, desktop: Page) -> None:
    streams: list[Route] = []
    lists: list[Route] = []

    def stream(route: Route) -> None:
        streams.append(route)
        if len(streams) == 1:  # the news, then the stream drops: the page comes back
            body = "retry: 100\n\n" + _event("ready", 1, {})
            for n, job in enumerate(STREAMED.values()):
                body += _event("status", 2 + n, job)
            body += _event("progress", 9, _progress("moved-on", 0.5))
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
        elif len(streams) > 2:
            quiet = "retry: 60000\n\n"
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=quiet)
        # the second (resumed) stream is held: it answers after the list

    desktop.route("**/v1/events", stream)
    desktop.route(re.compile(r"/v1/jobs\?"), lambda route: lists.append(route))  # held
    open_console(desktop, server.url)
    for job_id in STREAMED:
        expect(job_row(desktop, job_id).locator(".status")).to_have_text("running")
    expect(job_row(desktop, "moved-on").locator(".pct")).to_have_text("50%")

    listed = json.dumps({"items": LISTED, "next_cursor": None})
    _wait_for(desktop, lists, 1)
    for route in lists:
        route.fulfill(status=200, content_type="application/json", body=listed)
    expect(job_row(desktop, "listed-only").locator(".status")).to_have_text("succeeded")
    for job_id, (status, percent) in SHOWN.items():
        row = job_row(desktop, job_id)
        expect(row.locator(".status")).to_have_text(status)
        if percent:
            expect(row.locator(".pct")).to_have_text(percent)

    # A progress event of the attempt that has since ended, arriving late: nothing moves.
    _wait_for(desktop, streams, 2)  # the page came back
    body = "retry: 60000\n\n" + _event("progress", 10, _progress("late-progress", 0.9))
    body += _event("status", 11, _job("resumed", "succeeded", 1, FIRST))
    streams[1].fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
    expect(job_row(desktop, "resumed").locator(".status")).to_have_text("succeeded")
    expect(job_row(desktop, "late-progress").locator(".status")).to_have_text("queued")
