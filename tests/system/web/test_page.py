"""The console in a real browser (headless Chromium): two files uploaded through it, both jobs
followed live to `succeeded`, a result downloaded and checked; by keyboard alone; its CSP; the
API-key prompt. (Live updates, phones, uploads and the job panel: the other test_*.py here.)"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.support.servers import LIVE_SECRET, LiveServer, create_key, start_server, stop_server
from tests.system.web.conftest import PageMaker
from tests.system.web.driver import job_row, upload_through_the_page


def test_two_files_through_the_page(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    inputs = {"report.csv": b"n,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(20000)),
              "photo.raw": os.urandom(400_000)}  # fmt: skip
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    ids = upload_through_the_page(desktop, server.url, [tmp_path / name for name in inputs])
    assert all(ids)

    first = desktop.locator(f'#uploads .card[data-job="{ids[0]}"]')
    with desktop.expect_download() as info:
        first.locator("a.download").click()
    saved = tmp_path / "downloaded.gz"
    info.value.save_as(saved)
    with server.api() as client:
        job = client.job(ids[0])
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == job["result"]["sha256"]
    assert gzip.decompress(saved.read_bytes()) == inputs[job["input"]["filename"]]

    # The jobs table lists both, finished, without a refresh.
    for job_id in ids:
        expect(job_row(desktop, job_id).locator(".status")).to_have_text("succeeded")


def test_usable_by_keyboard_alone(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_bytes(b"keyboard " * 1000)
    # Answer the file picker when it opens (registered first: the browser must be told to
    # hand the picker over before it can open).
    desktop.on("filechooser", lambda chooser: chooser.set_files(str(tmp_path / "note.txt")))
    desktop.goto(server.url)
    expect(desktop.locator("#processor option")).not_to_have_count(0)
    desktop.keyboard.press("Tab")  # the first stop skips to the jobs
    expect(desktop.get_by_role("link", name="Skip to jobs")).to_be_focused()
    desktop.focus("#drop")
    desktop.keyboard.press("Enter")  # the drop zone opens the file picker from the keyboard
    expect(desktop.locator("#picked li")).to_have_count(1)
    desktop.focus("#processor")
    desktop.keyboard.type("checksum")
    expect(desktop.locator("#processor")).to_have_value("checksum")
    desktop.focus("#start")
    desktop.keyboard.press("Enter")
    card = desktop.locator("#uploads .card").first
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(desktop.locator("#announcer")).to_contain_text("note.txt")  # said, not only shown
    # From the last field of the form, Tab reaches the card's buttons, with a visible ring.
    desktop.focus("#start")
    desktop.keyboard.press("Tab")
    expect(desktop.locator("#clear-done")).to_be_focused()
    desktop.keyboard.press("Tab")
    expect(card.get_by_role("link", name="Details of note.txt")).to_be_focused()
    ring = desktop.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert ring == "solid", ring


def test_the_page_is_locked_down(server: LiveServer) -> None:
    response = httpx.get(server.url + "/", timeout=30)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # Scripts only as files from this server: no inline script, no handler attributes.
    scripts = re.findall(r"<script\b[^>]*>", response.text)
    assert scripts and all('src="/static/' in tag for tag in scripts), scripts
    assert not re.search(r"\son[a-z]+=", response.text)
    for module in re.findall(
        r'from "\./([a-z-]+\.js)"', httpx.get(server.url + "/static/app.js").text
    ):
        answer = httpx.get(f"{server.url}/static/{module}", timeout=30)
        assert answer.status_code == 200 and "javascript" in answer.headers["content-type"]
        # Revalidated on each load: after an upgrade, no cached module mixes with new ones.
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_page_asks_for_a_key_and_keeps_it(new_page: PageMaker, tmp_path: Path) -> None:
    env = {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": LIVE_SECRET}
    process, url = start_server(tmp_path / "data", tmp_path / "server.log", env)
    try:
        token = create_key(tmp_path / "data", name="browser", **env)
        (tmp_path / "in.txt").write_bytes(b"with a key")
        page = new_page()
        page.goto(url)
        expect(page.locator("#notice")).to_contain_text("needs an API key")
        expect(page.locator("#key-box")).to_have_attribute("open", "")
        page.fill("#api-key", token)
        page.click("#key-form button[type=submit]")
        expect(page.locator("#key-state")).to_have_text("(saved)")
        page.reload()  # kept in the browser
        expect(page.locator("#key-state")).to_have_text("(saved)")
        expect(page.locator("#processor option")).not_to_have_count(0)
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")  # keyed too
        page.set_input_files("#files", str(tmp_path / "in.txt"))
        page.select_option("#processor", "checksum")
        page.click("#start")
        expect(page.locator("#uploads .card .status").first).to_have_text(
            "succeeded", timeout=60_000
        )
    finally:
        stop_server(process)
