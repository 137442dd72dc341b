"""The console on a 390 px phone: no sideways scrolling anywhere, and every action of the jobs
list, the upload cards, the job panel and the confirmations on the screen."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.support.servers import LiveServer
from tests.system.web.conftest import LONG, submit_job, wait_for_status
from tests.system.web.driver import (
    inside_the_screen,
    job_row,
    no_sideways_scroll,
    open_console,
    shot,
    submit,
)

LONG_NAME = "quarterly-report-with-a-name-much-too-long-for-a-phone-2026-final-v3.csv"


def test_every_job_action_is_on_a_phone_screen(
    server: LiveServer, phone: Page, tmp_path: Path
) -> None:
    (tmp_path / LONG_NAME).write_bytes(b"n,value\n" + b"1,2\n" * 5000)
    (tmp_path / "broken.bin").write_bytes(b"x" * 1000)
    (tmp_path / "long.bin").write_bytes(b"y" * 1000)
    done = submit_job(server, tmp_path / LONG_NAME, "checksum")
    failed = submit_job(server, tmp_path / "broken.bin", "slow", steps=1, fail=True)
    running = submit_job(server, tmp_path / "long.bin", "slow", **LONG)
    wait_for_status(server, done["id"], "succeeded")
    wait_for_status(server, failed["id"], "failed")
    wait_for_status(server, running["id"], "running")

    open_console(phone, server.url)
    for job in (done, failed, running):
        expect(job_row(phone, job["id"])).to_be_visible()
    no_sideways_scroll(phone)
    inside_the_screen(phone, phone.locator("#recent td.actions > *"))
    expect(job_row(phone, failed["id"]).locator("td.error")).to_contain_text("asked to fail")
    inside_the_screen(phone, phone.locator("#recent td.file"))
    shot(phone, "jobs-phone", tmp_path)

    # The confirmation, too, fits.
    job_row(phone, running["id"]).get_by_role("button", name="Cancel").click()
    inside_the_screen(phone, phone.locator("#confirm button"))
    phone.keyboard.press("Escape")
    expect(phone.locator("#confirm")).to_be_hidden()


def test_uploads_and_the_job_panel_fit_a_phone(
    server: LiveServer, phone: Page, tmp_path: Path
) -> None:
    (tmp_path / LONG_NAME).write_bytes(b"n,value\n" + b"1,2\n" * 5000)
    open_console(phone, server.url)
    submit(phone, [tmp_path / LONG_NAME], "compress", format="gzip")
    card = phone.locator("#uploads .card").first
    expect(card.locator(".status")).to_have_text("succeeded", timeout=60_000)
    no_sideways_scroll(phone)
    inside_the_screen(phone, card.locator(".actions > *"))
    shot(phone, "upload-phone", tmp_path)

    card.get_by_role("link", name=f"Details of {LONG_NAME}").click()
    panel = phone.locator("#job-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".timeline li")).to_have_count(3)
    no_sideways_scroll(phone)
    inside_the_screen(phone, panel.locator(".actions > *, .close"))
    width = panel.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert width, "the panel scrolls sideways"
    shot(phone, "job-panel-phone", tmp_path, full_page=False)
