"""The page in a real browser (headless Chromium): two files uploaded through it, both jobs
followed live to `succeeded`, a result downloaded and checked; keyboard and phone layouts."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.servers import LIVE_SECRET, LiveServer, create_key, start_server, stop_server
from tests.system.web.driver import browser, upload_through_the_page


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("web")
    process, url = start_server(root / "data", root / "server.log")
    try:
        yield LiveServer(url, process.pid, root / "data")
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as instance:
        yield instance


def test_two_files_through_the_page(server: LiveServer, chromium: Browser, tmp_path: Path) -> None:
    inputs = {"report.csv": b"n,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(20000)),
              "photo.raw": os.urandom(400_000)}  # fmt: skip
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    page = chromium.new_page(accept_downloads=True, viewport={"width": 1100, "height": 900})
    ids = upload_through_the_page(page, server.url, [tmp_path / name for name in inputs])
    assert all(ids)

    first = page.locator(f'#uploads .card[data-job="{ids[0]}"]')
    with page.expect_download() as info:
        first.locator("a.download").click()
    saved = tmp_path / "downloaded.gz"
    info.value.save_as(saved)
    with server.api() as client:
        job = client.job(ids[0])
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == job["result"]["sha256"]
    assert gzip.decompress(saved.read_bytes()) == inputs[job["input"]["filename"]]

    # The recent-jobs table lists both, finished.
    page.click("#refresh")
    for job_id in ids:
        expect(page.locator(f'#recent tr[data-job="{job_id}"] .status')).to_have_text("succeeded")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_usable_by_keyboard_alone(server: LiveServer, chromium: Browser, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_bytes(b"keyboard " * 1000)
    page = chromium.new_page()
    # Answer the file picker when it opens (registered first: the browser must be told to
    # hand the picker over before it can open).
    page.on("filechooser", lambda chooser: chooser.set_files(str(tmp_path / "note.txt")))
    page.goto(server.url)
    expect(page.locator("#processor option")).not_to_have_count(0)
    page.focus("#drop")
    page.keyboard.press("Enter")  # the drop zone opens the file picker from the keyboard
    expect(page.locator("#picked li")).to_have_count(1)
    page.focus("#processor")
    page.keyboard.type("checksum")
    expect(page.locator("#processor")).to_have_value("checksum")
    page.focus("#start")
    page.keyboard.press("Enter")
    expect(page.locator("#uploads .card .status").first).to_have_text("succeeded", timeout=60_000)
    download = page.locator("#uploads .card a.download").first
    download.focus()
    expect(download).to_be_focused()


def test_readable_on_a_phone(server: LiveServer, chromium: Browser, tmp_path: Path) -> None:
    page = chromium.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
    page.goto(server.url)
    expect(page.locator("#processor option")).not_to_have_count(0)
    # Nothing wider than the screen: no sideways scrolling of the page itself.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


def test_the_page_is_locked_down(server: LiveServer) -> None:
    response = httpx.get(server.url + "/", timeout=30)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert httpx.get(server.url + "/static/app.js", timeout=30).status_code == 200


def test_the_page_asks_for_a_key_and_keeps_it(chromium: Browser, tmp_path: Path) -> None:
    env = {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": LIVE_SECRET}
    process, url = start_server(tmp_path / "data", tmp_path / "server.log", env)
    try:
        token = create_key(tmp_path / "data", name="browser", **env)
        (tmp_path / "in.txt").write_bytes(b"with a key")
        page = chromium.new_page()
        page.goto(url)
        expect(page.locator("#notice")).to_contain_text("needs an API key")
        expect(page.locator("#key-box")).to_have_attribute("open", "")
        page.fill("#api-key", token)
        page.click("#key-form button[type=submit]")
        expect(page.locator("#key-state")).to_have_text("(saved)")
        page.reload()  # kept in the browser
        expect(page.locator("#key-state")).to_have_text("(saved)")
        expect(page.locator("#processor option")).not_to_have_count(0)
        page.set_input_files("#files", str(tmp_path / "in.txt"))
        page.select_option("#processor", "checksum")
        page.click("#start")
        expect(page.locator("#uploads .card .status").first).to_have_text(
            "succeeded", timeout=60_000
        )
    finally:
        stop_server(process)
