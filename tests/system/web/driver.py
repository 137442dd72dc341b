"""Drives filejob's console in the system's headless Chromium (Playwright, no browser
download): shared by tests/system/web and docs/screenshot.py, which makes the docs' pictures."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

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

# The two screens the console is made for: a laptop and a phone.
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
# Where screenshots of the tests' states go, to be looked at (unset: the test's tmp_path).
SHOTS_ENV = "FILEJOB_WEB_SHOTS"


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


def shot(page: Page, name: str, fallback: Path, *, full_page: bool = True) -> Path:
    """A screenshot named `name`, in $FILEJOB_WEB_SHOTS if set, else in `fallback`."""
    folder = Path(os.environ.get(SHOTS_ENV) or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def open_console(page: Page, url: str) -> None:
    """Open the console and wait until it has the processors (the API answered)."""
    page.goto(url)
    expect(page.locator("#processor option")).not_to_have_count(0)


def submit(page: Page, files: list[Path], processor: str, **params: str) -> None:
    """Pick `files`, choose `processor` and its `params` (by field name), press start."""
    page.set_input_files("#files", [str(f) for f in files])
    expect(page.locator("#picked li")).to_have_count(len(files))
    page.select_option("#processor", processor)
    for name, value in params.items():
        field = page.locator(f"#param-{name}")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.click("#start")


def upload_card(page: Page, filename: str) -> Locator:
    return page.locator("#uploads .card").filter(has=page.locator(".name", has_text=filename))


def upload_through_the_page(page: Page, url: str, files: list[Path]) -> list[str]:
    """Open the page, pick `files`, choose gzip compression, start; wait for every job to
    succeed. Returns the job ids, in the order of the cards on the page."""
    open_console(page, url)
    submit(page, files, "compress", format="gzip", level="9")
    cards = page.locator("#uploads .card")
    expect(cards).to_have_count(len(files))
    for n in range(len(files)):
        expect(cards.nth(n).locator(".status")).to_have_text("succeeded", timeout=60_000)
    return [cards.nth(n).get_attribute("data-job") or "" for n in range(len(files))]


def job_row(page: Page, job_id: str) -> Locator:
    return page.locator(f'#recent tbody tr[data-job="{job_id}"]')


def confirm(page: Page, yes: str) -> None:
    """Answer the open confirmation with its button named `yes`."""
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=yes).click()
    expect(dialog).to_be_hidden()


def no_sideways_scroll(page: Page) -> None:
    """Nothing on the page is wider than the screen."""
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
    assert width <= inner, f"the page is {width} px wide on a {inner} px screen"


def inside_the_screen(page: Page, locator: Locator) -> None:
    """Every element of `locator` is visible and lies within the screen's width."""
    inner = page.evaluate("innerWidth")
    count = locator.count()
    assert count, "nothing to check"
    for n in range(count):
        item = locator.nth(n)
        expect(item).to_be_visible()
        box = item.bounding_box()
        assert box is not None
        label = item.get_attribute("aria-label") or item.inner_text()
        assert box["x"] >= 0 and box["x"] + box["width"] <= inner, (label, box, inner)
