"""Big files go up as tus uploads (/v1/uploads, tus-js-client in the page), small ones as one
multipart POST /v1/jobs: a resumable upload shows the same progress, becomes a job that joins
the table, pauses and resumes, goes on after the page is reloaded (no new upload: the server's
offset at the first HEAD is past 0), and a cancelled or discarded one is gone from the server.

The page takes files from 1 MiB up as resumable and sends 1 MiB chunks here
(`?resumable_from=&chunk_size=`), under Chromium's own upload throttling, so that an upload is
still on its way when the test acts; each step waits on a condition (the server's offset, the
card's state), never on time."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Response, expect

from tests.support.servers import LiveServer
from tests.support.wait import wait_until
from tests.system.web.driver import job_row, open_console, shot, submit, upload_card
from tests.system.web.test_uploads import SIZE, throttle

MiB = 1024 * 1024
RESUMABLE = f"/?resumable_from={MiB}&chunk_size={MiB}"
TUS = {"Tus-Resumable": "1.0.0"}
UNTHROTTLED = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}


@dataclass
class Traffic:
    """What the page asked of /v1/uploads and /v1/jobs, and the HEADs' answers."""

    requests: list[Request] = field(default_factory=list)
    heads: list[Response] = field(default_factory=list)

    def of(self, method: str, path: str) -> list[Request]:
        return [
            r for r in self.requests if r.method == method and re.search(path, r.url.split("?")[0])
        ]

    def clear(self) -> None:
        self.requests.clear()
        self.heads.clear()


@pytest.fixture
def traffic(desktop: Page) -> Iterator[Traffic]:
    seen = Traffic()

    def request(r: Request) -> None:
        if "/v1/uploads" in r.url or "/v1/jobs" in r.url:
            seen.requests.append(r)

    def response(r: Response) -> None:
        if r.request.method == "HEAD" and "/v1/uploads/" in r.url:
            seen.heads.append(r)

    desktop.on("request", request)
    desktop.on("response", response)
    yield seen


def big_file(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


def upload_path(page: Page, name: str) -> str:
    """The card's upload URL (path), once the server has made the upload."""
    card = upload_card(page, name)
    expect(card).to_have_attribute("data-upload", re.compile(r"^/v1/uploads/."))
    return card.get_attribute("data-upload") or ""


def wait_for_offset(server: LiveServer, path: str, at_least: int) -> int:
    """Waits until the server has kept `at_least` bytes of the upload at `path`."""
    with server.client() as http:

        def kept() -> int | None:
            offset = int(http.get(path).json()["offset"])
            return offset if offset >= at_least else None

        return wait_until(kept, timeout=60, interval=0.05, message=f"{path} < {at_least}")


def stored_uploads(page: Page) -> list[str]:
    """The upload URLs tus-js-client keeps in the page's local storage."""
    return page.evaluate("Object.keys(localStorage).filter((k) => k.startsWith('tus::'))")


def test_a_big_file_goes_up_resumable_and_its_job_joins_the_table(
    server: LiveServer, desktop: Page, traffic: Traffic, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "footage.bin", 5 * MiB)
    open_console(desktop, server.url + RESUMABLE)
    throttle(desktop, 2 * MiB)
    submit(desktop, [path], "checksum")
    card = upload_card(desktop, "footage.bin")
    expect(card).to_have_attribute("data-kind", "resumable")
    expect(card.locator(".status")).to_have_text("uploading")
    expect(card.locator(".stats")).to_have_text(
        re.compile(rf"^\d+% · {SIZE} of 5 MiB · {SIZE}/s · .+ left · .+ elapsed$"), timeout=15_000
    )
    expect(card.get_by_role("progressbar")).to_have_attribute(
        "aria-valuetext", re.compile("uploaded")
    )
    expect(card.get_by_role("button", name="Pause upload of footage.bin")).to_be_visible()
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    job_id = card.get_attribute("data-job") or ""
    expect(job_row(desktop, job_id)).to_have_attribute("data-status", "succeeded")

    uploads = traffic.of("POST", r"/v1/uploads$")
    assert len(uploads) == 1, [r.url for r in traffic.requests]
    assert re.fullmatch(r"[0-9a-f]{32}", uploads[0].headers.get("idempotency-key", ""))
    assert len(traffic.of("PATCH", r"/v1/uploads/")) >= 5  # 1 MiB chunks
    assert not traffic.of("POST", r"/v1/jobs$")
    with server.client() as http:
        assert http.get(upload_path(desktop, "footage.bin")).json()["job_id"] == job_id
    with server.api() as client:
        job = client.job(job_id)
    assert job["input"]["filename"] == "footage.bin"
    assert job["input"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stored_uploads(desktop) == []  # done: nothing left to resume


def test_a_small_file_keeps_the_multipart_upload(
    server: LiveServer, desktop: Page, traffic: Traffic, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "small.bin", MiB - 1)
    open_console(desktop, server.url + RESUMABLE)
    submit(desktop, [path], "checksum")
    card = upload_card(desktop, "small.bin")
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(card).to_have_attribute("data-kind", "form")
    assert len(traffic.of("POST", r"/v1/jobs$")) == 1
    assert not traffic.of("POST", r"/v1/uploads$")


def test_an_upload_pauses_and_resumes_where_the_server_stopped(
    server: LiveServer, desktop: Page, traffic: Traffic, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "paused.bin", 4 * MiB)
    open_console(desktop, server.url + RESUMABLE)
    cdp = throttle(desktop, MiB)
    submit(desktop, [path], "checksum")
    card = upload_card(desktop, "paused.bin")
    wait_for_offset(server, upload_path(desktop, "paused.bin"), MiB)
    card.get_by_role("button", name="Pause upload of paused.bin").click()
    expect(card.locator(".status")).to_have_text("paused")
    expect(card.locator(".stats")).to_contain_text(re.compile(rf"Paused at \d+% · {SIZE} of 4 MiB"))
    shot(desktop, "paused-desktop", tmp_path)
    cdp.send("Network.emulateNetworkConditions", UNTHROTTLED)
    card.get_by_role("button", name="Resume upload of paused.bin").click()
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    assert len(traffic.of("POST", r"/v1/uploads$")) == 1
    offsets = [int(r.headers["upload-offset"]) for r in traffic.heads]
    assert offsets and offsets[0] >= MiB, offsets


def test_a_reloaded_page_goes_on_with_the_upload(
    server: LiveServer, desktop: Page, traffic: Traffic, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "reloaded.bin", 6 * MiB)
    open_console(desktop, server.url + RESUMABLE)
    cdp = throttle(desktop, MiB)
    submit(desktop, [path], "checksum")
    upload = upload_path(desktop, "reloaded.bin")
    kept = wait_for_offset(server, upload, 2 * MiB)

    traffic.clear()
    cdp.send("Network.emulateNetworkConditions", UNTHROTTLED)
    desktop.reload()
    expect(desktop.locator("#processor option")).not_to_have_count(0)
    left = desktop.locator(f'#uploads .card[data-upload="{upload}"]')
    expect(left.locator(".status")).to_have_text("unfinished")
    expect(left).to_contain_text("Choose the file again")
    expect(left).to_contain_text("reloaded.bin")
    shot(desktop, "unfinished-desktop", tmp_path)

    submit(desktop, [path], "checksum")
    card = upload_card(desktop, "reloaded.bin")
    expect(card).to_have_count(1)  # the unfinished card gave way to the upload going on
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(card).to_have_attribute("data-upload", upload)
    assert not traffic.of("POST", r"/v1/uploads$"), "the upload was made again"
    first = next(r for r in traffic.heads if r.url.endswith(upload))
    assert int(first.headers["upload-offset"]) >= kept > 0
    with server.client() as http:
        assert http.get(upload).json()["job_id"] == card.get_attribute("data-job")
    with server.api() as client:
        job = client.job(card.get_attribute("data-job") or "")
    assert job["input"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stored_uploads(desktop) == []


def test_a_cancelled_upload_is_removed_from_the_server(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "cancelled.bin", 6 * MiB)
    open_console(desktop, server.url + RESUMABLE)
    throttle(desktop, 512 * 1024)
    submit(desktop, [path], "checksum")
    card = upload_card(desktop, "cancelled.bin")
    upload = upload_path(desktop, "cancelled.bin")
    expect(card.locator(".stats")).to_contain_text("left", timeout=15_000)
    card.get_by_role("button", name="Cancel upload of cancelled.bin").click()
    expect(card.locator(".status")).to_have_text("cancelled")
    expect(card.locator(".error")).to_be_hidden()
    with server.client() as http:
        assert http.head(upload, headers=TUS).status_code == 404
    with server.api() as client:
        names = [job["input"]["filename"] for job in client.jobs(limit=500)]
    assert "cancelled.bin" not in names
    assert stored_uploads(desktop) == []


def test_an_upload_left_unfinished_can_be_discarded(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    path = big_file(tmp_path, "left.bin", 6 * MiB)
    open_console(desktop, server.url + RESUMABLE)
    cdp = throttle(desktop, MiB)
    submit(desktop, [path], "checksum")
    upload = upload_path(desktop, "left.bin")
    wait_for_offset(server, upload, MiB)
    cdp.send("Network.emulateNetworkConditions", UNTHROTTLED)
    desktop.reload()
    left = desktop.locator(f'#uploads .card[data-upload="{upload}"]')
    left.get_by_role("button", name="Discard upload of left.bin").click()
    expect(left).to_have_count(0)
    with server.client() as http:
        assert http.head(upload, headers=TUS).status_code == 404
    assert stored_uploads(desktop) == []
    desktop.reload()
    expect(desktop.locator("#processor option")).not_to_have_count(0)
    expect(desktop.locator("#uploads .card")).to_have_count(0)


def test_a_refused_resumable_upload_says_why_and_leaves_nothing(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a picture\n" * (2 * MiB // 14))
    open_console(desktop, server.url + RESUMABLE)
    submit(desktop, [path], "thumbnail")
    card = upload_card(desktop, "notes.txt")
    upload = upload_path(desktop, "notes.txt")
    expect(card.locator(".status")).to_have_text("refused", timeout=30_000)
    expect(card.locator(".error")).to_contain_text("(unsupported_media_type)")
    expect(card.get_by_role("progressbar")).to_have_attribute("data-state", "error")
    with server.client() as http:  # refused for good: the page dropped the upload's bytes
        wait_until(lambda: http.head(upload, headers=TUS).status_code == 404, timeout=30)
    wait_until(lambda: stored_uploads(desktop) == [], timeout=30)
