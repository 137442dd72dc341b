"""An upload's card tells how it goes: %, bytes, speed, time left and time taken while the
file goes up; % and time taken while the job runs; a refusal in error colours with the
server's reason; sizes in KiB, MiB, GiB; an upload can be aborted."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import CDPSession, Page, expect

from tests.support.servers import LiveServer, start_server, stop_server
from tests.system.web.conftest import LONG
from tests.system.web.driver import open_console, shot, submit, upload_card

MiB = 1024 * 1024
SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB)"
UPLOADING = re.compile(rf"^\d+% · {SIZE} of 6 MiB · {SIZE}/s · .+ left · .+ elapsed$")


def throttle(page: Page, bytes_per_second: int) -> CDPSession:
    """Chromium's own network throttling (DevTools), so that an upload takes a while."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )
    return cdp


def test_an_upload_shows_its_speed_and_time_left(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    (tmp_path / "video.bin").write_bytes(os.urandom(6 * MiB))
    open_console(desktop, server.url)
    throttle(desktop, 2 * MiB)
    submit(desktop, [tmp_path / "video.bin"], "checksum")
    card = upload_card(desktop, "video.bin")
    expect(card.locator(".status")).to_have_text("uploading")
    expect(card.locator(".stats")).to_have_text(UPLOADING, timeout=15_000)
    expect(card.get_by_role("progressbar")).to_have_attribute(
        "aria-valuetext", re.compile("uploaded")
    )
    expect(card.locator(".size")).to_have_text("6 MiB")
    shot(desktop, "uploading-desktop", tmp_path)
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(card.locator(".stats")).to_contain_text("Done")
    expect(card.locator("a.download")).to_contain_text(re.compile(rf"\({SIZE}\)"))


def test_an_upload_can_be_aborted(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / "aborted.bin").write_bytes(os.urandom(6 * MiB))
    open_console(desktop, server.url)
    throttle(desktop, 512 * 1024)
    submit(desktop, [tmp_path / "aborted.bin"], "checksum")
    card = upload_card(desktop, "aborted.bin")
    expect(card.locator(".stats")).to_contain_text("left", timeout=15_000)
    card.get_by_role("button", name="Abort upload of aborted.bin").click()
    expect(card.locator(".status")).to_have_text("aborted")
    expect(card.get_by_role("progressbar")).to_have_attribute("data-state", "idle")
    with server.api() as client:
        names = [job["input"]["filename"] for job in client.jobs(limit=500)]
    assert "aborted.bin" not in names


def test_a_running_job_shows_percent_and_time(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    (tmp_path / "steady.bin").write_bytes(b"z" * 10_000)
    open_console(desktop, server.url)
    submit(desktop, [tmp_path / "steady.bin"], "slow", steps=str(LONG["steps"]), step_seconds="0.2")
    card = upload_card(desktop, "steady.bin")
    expect(card.locator(".stats")).to_have_text(
        re.compile(r"^Processing [1-9]\d*% · \S+ s elapsed$"), timeout=30_000
    )
    bar = card.get_by_role("progressbar")
    expect(bar).to_have_attribute("data-state", "process")
    assert int(bar.get_attribute("aria-valuenow") or 0) >= 1
    card.get_by_role("button", name="Cancel steady.bin").click()
    desktop.locator("#confirm").get_by_role("button", name="Cancel job").click()
    expect(card.locator(".status")).to_have_text("cancelled", timeout=30_000)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that takes uploads of at most 1 MiB."""
    root = tmp_path_factory.mktemp("small")
    env = {"FILEJOB_MAX_UPLOAD_BYTES": str(MiB)}
    process, url = start_server(root / "data", root / "server.log", env)
    try:
        yield url
    finally:
        stop_server(process)


def test_a_refused_upload_says_why_in_error_colours(
    small_server: str, desktop: Page, tmp_path: Path
) -> None:
    (tmp_path / "too-big.bin").write_bytes(os.urandom(3 * MiB))
    open_console(desktop, small_server)
    submit(desktop, [tmp_path / "too-big.bin"], "checksum")
    card = upload_card(desktop, "too-big.bin")
    expect(card.locator(".status")).to_have_text("refused", timeout=30_000)
    expect(card.get_by_role("progressbar")).to_have_attribute("data-state", "error")
    expect(card.locator(".error")).to_contain_text("3 MiB")
    expect(card.locator(".error")).to_contain_text("up to 1 MiB (payload_too_large)")
    assert not re.search(r"\d{4,} bytes", card.inner_text()), card.inner_text()
    fill = card.locator(".bar .fill")
    colour = fill.evaluate(
        "e => getComputedStyle(e).backgroundImage + getComputedStyle(e).backgroundColor"
    )
    assert "31, 95, 191" not in colour, colour  # not the upload's blue
    shot(desktop, "refused-desktop", tmp_path)


def test_a_file_of_the_wrong_type_is_refused_with_the_servers_words(
    server: LiveServer, desktop: Page, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_bytes(b"not a picture\n" * 100)
    open_console(desktop, server.url)
    submit(desktop, [tmp_path / "notes.txt"], "thumbnail")
    card = upload_card(desktop, "notes.txt")
    expect(card.locator(".status")).to_have_text("refused", timeout=30_000)
    expect(card.locator(".error")).to_contain_text("(unsupported_media_type)")
    expect(card.get_by_role("progressbar")).to_have_attribute("data-state", "error")
