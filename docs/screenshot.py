"""Makes the pictures on docs/web-page.md with the browser tests' driver: console-desktop.png
(1280 px wide) and console-phone.png (390 px). It starts a server on a temporary data dir, one
that also offers the tests' `slow` processor (so that jobs stay running long enough to be
seen), and takes at most 64 MiB per upload; sends a few jobs through the API (finished, failed)
and more through the page in headless Chromium (running, queued, one upload held to 6 MiB/s,
one refused for its size), then takes the pictures.

Run: `.venv/bin/python docs/screenshot.py`
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from playwright.sync_api import Page, expect  # noqa: E402

from filejob.client.api import FilejobClient  # noqa: E402
from tests.support.servers import processors_pythonpath, start_server, stop_server  # noqa: E402
from tests.support.wait import wait_until  # noqa: E402
from tests.system.web.conftest import stop_unfinished  # noqa: E402
from tests.system.web.driver import (  # noqa: E402
    DESKTOP,
    PHONE,
    browser,
    open_console,
    submit,
    upload_card,
)

MiB = 1024 * 1024


def make_files(root: Path) -> dict[str, Path]:
    files = {
        "sales-2025.csv": b"day,units\n" + b"".join(b"%d,%d\n" % (n, n % 91) for n in range(90000)),
        "README.md": (ROOT / "README.md").read_bytes(),
        "scan-0193.tiff": os.urandom(700_000),
        "scan-0194.tiff": os.urandom(900_000),
        "scan-0195.tiff": os.urandom(500_000),
        "interview.wav": os.urandom(48 * MiB),
        "backup.tar": os.urandom(80 * MiB),
    }  # fmt: skip
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 120, 200)).save(picture, format="PNG")
    files["holiday.png"] = picture.getvalue()[:300]  # a damaged picture: its job fails
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in files}


def through_the_api(url: str, files: dict[str, Path]) -> None:
    with FilejobClient(url) as client:
        done = [
            client.submit(files["README.md"], "compress", {"format": "zstd"}),
            client.submit(files["sales-2025.csv"], "csv-to-parquet"),
            client.submit(files["holiday.png"], "thumbnail"),
        ]
        wait_until(
            lambda: all(client.job(j["id"])["status"] in ("succeeded", "failed") for j in done)
        )


def through_the_page(page: Page, url: str, files: dict[str, Path]) -> None:
    open_console(page, url)
    scans = [files[name] for name in ("scan-0193.tiff", "scan-0194.tiff", "scan-0195.tiff")]
    submit(page, scans, "slow", steps="400", step_seconds="0.1")
    submit(page, [files["backup.tar"]], "checksum")
    expect(upload_card(page, "backup.tar").locator(".status")).to_have_text("refused")
    cdp = page.context.new_cdp_session(page)  # the big upload at a believable speed
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 6 * MiB},
    )
    submit(page, [files["interview.wav"]], "checksum")
    expect(upload_card(page, "interview.wav").locator(".stats")).to_contain_text("left")
    running = page.locator('#recent tbody tr[data-status="running"] .pct')
    expect(running.first).not_to_have_text("0%", timeout=30_000)
    page.wait_for_timeout(3000)  # a few seconds in: figures that say something


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="filejob-shot-") as tmp:
        root = Path(tmp)
        files = make_files(root)
        env = {
            "PYTHONPATH": processors_pythonpath(root),
            "FILEJOB_WORKERS": "2",
            "FILEJOB_MAX_UPLOAD_BYTES": str(64 * MiB),
        }
        process, url = start_server(root / "data", root / "server.log", env)
        try:
            through_the_api(url, files)
            with browser() as chromium:
                desktop = chromium.new_context(**DESKTOP).new_page()
                through_the_page(desktop, url, files)
                desktop.screenshot(path=str(ROOT / "docs" / "console-desktop.png"), full_page=True)
                phone = chromium.new_context(**PHONE, device_scale_factor=2).new_page()
                open_console(phone, url)
                expect(
                    phone.locator('#recent tbody tr[data-status="running"]').first
                ).to_be_visible()
                phone.locator("#jobs-title").scroll_into_view_if_needed()
                phone.evaluate("document.querySelector('#jobs').scrollIntoView()")
                phone.wait_for_timeout(500)
                phone.screenshot(path=str(ROOT / "docs" / "console-phone.png"))
        finally:
            try:
                stop_unfinished(url)  # running jobs would hold the shutdown's drain
            finally:
                stop_server(process)
    print("wrote docs/console-desktop.png and docs/console-phone.png")


if __name__ == "__main__":
    main()
