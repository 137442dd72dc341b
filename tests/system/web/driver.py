"""Drives filejob's page in the system's headless Chromium (Playwright, no browser download):
shared by tests/system/web and docs/screenshot.py, which makes docs/page.png."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

# As the machine's probe runs it: no sandbox for root, no calls home from a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Chromium is missing: .ci/run installs Debian's `chromium` package"
    return path


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def upload_through_the_page(page: Page, url: str, files: list[Path]) -> list[str]:
    """Open the page, pick `files`, choose gzip compression, start; wait for every job to
    succeed. Returns the job ids, in the order of the cards on the page."""
    page.goto(url)
    expect(page.locator("#processor option")).not_to_have_count(0)
    page.set_input_files("#files", [str(f) for f in files])
    expect(page.locator("#picked li")).to_have_count(len(files))
    page.select_option("#processor", "compress")
    page.select_option("#param-format", "gzip")
    page.fill("#param-level", "9")
    page.click("#start")
    cards = page.locator("#uploads .card")
    expect(cards).to_have_count(len(files))
    for n in range(len(files)):
        expect(cards.nth(n).locator(".status")).to_have_text("succeeded", timeout=60_000)
    return [cards.nth(n).get_attribute("data-job") or "" for n in range(len(files))]
