"""Makes docs/page.png, the picture on docs/web-page.md, with the browser test's driver:
starts a server on a temporary data dir, uploads two files through the page in headless
Chromium, waits for both jobs, and takes the screenshot.

Run: `.venv/bin/python docs/screenshot.py`
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.servers import start_server, stop_server  # noqa: E402
from tests.system.web.driver import browser, upload_through_the_page  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="filejob-shot-") as tmp:
        root = Path(tmp)
        (root / "report.csv").write_bytes(
            b"n,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(50000))
        )
        (root / "notes.txt").write_bytes((ROOT / "README.md").read_bytes())
        process, url = start_server(root / "data", root / "server.log")
        try:
            with browser() as chromium:
                page = chromium.new_page(viewport={"width": 1000, "height": 900})
                upload_through_the_page(page, url, [root / "report.csv", root / "notes.txt"])
                page.click("#refresh")
                page.wait_for_timeout(300)
                page.screenshot(path=str(ROOT / "docs" / "page.png"), full_page=True)
        finally:
            stop_server(process)
    print("wrote docs/page.png")


if __name__ == "__main__":
    main()
