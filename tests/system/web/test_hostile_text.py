"""Whatever a client or a file put in a job (its file's name, an error quoting the file) is shown
as text: in the upload cards, the jobs table, the job panel and what is announced, never read as
markup. (The page's CSP would also stop an inline handler; the text must not get that far.)"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.support.servers import LiveServer
from tests.system.web.driver import job_row, open_console, submit, upload_card

NAME = "<img src=x onerror=window.__pwned=1>.txt"
COLUMN = "<img src=y onerror=window.__pwned=2>"
VALUE = "<img src=z onerror=window.__pwned=3>"
CSV_NAME = "<b>bold.csv"  # no closing tag: a file name has no slash


def _hostile_csv(path: Path) -> None:
    """A CSV whose error names its column and a value: a whole first block (1 MiB) of whole
    numbers, then text, which `csv-to-parquet` refuses quoting both."""
    path.write_text(COLUMN + "\n" + "1\n" * 700_000 + VALUE + "\n")


def _nothing_ran(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, b').length") == 0


def _shown_as_text(locator: Locator, text: str) -> None:
    expect(locator).to_contain_text(text)


def test_names_and_errors_are_text(server: LiveServer, desktop: Page, tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(b"hostile name " * 100)
    _hostile_csv(tmp_path / CSV_NAME)
    open_console(desktop, server.url)
    submit(desktop, [tmp_path / NAME], "checksum")
    named = upload_card(desktop, NAME)
    expect(named.locator(".status")).to_have_text("succeeded", timeout=60_000)
    expect(named.locator(".name")).to_have_text(NAME)  # the upload card, and what was said
    _shown_as_text(desktop.locator("#announcer"), f"{NAME}: succeeded")
    submit(desktop, [tmp_path / CSV_NAME], "csv-to-parquet")
    failing = upload_card(desktop, CSV_NAME)
    expect(failing.locator(".status")).to_have_text("failed", timeout=60_000)
    error = f"value '{VALUE}' in column '{COLUMN}' is not int64"
    _shown_as_text(failing.locator(".error"), error)

    # The jobs table.
    ids = {name: card.get_attribute("data-job") or "" for name, card in
           [(NAME, named), (CSV_NAME, failing)]}  # fmt: skip
    expect(job_row(desktop, ids[NAME]).get_by_role("link", name=NAME, exact=True)).to_be_visible()
    _shown_as_text(job_row(desktop, ids[CSV_NAME]).locator("td.error"), error)
    _nothing_ran(desktop)

    # The job panels: the name, the result named after it, the error and the attempt's.
    job_row(desktop, ids[NAME]).get_by_role("link", name=NAME, exact=True).click()
    panel = desktop.locator("#job-panel")
    expect(panel.locator("#job-title")).to_have_text(NAME)
    _shown_as_text(panel, f"{NAME}.checksum.json")
    desktop.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    job_row(desktop, ids[CSV_NAME]).get_by_role("link", name=CSV_NAME, exact=True).click()
    expect(panel.locator("#job-title")).to_have_text(CSV_NAME)
    _shown_as_text(panel.locator(".error").first, error)
    _shown_as_text(panel.locator(".attempts li").first, error)
    _nothing_ran(desktop)
