"""`filejob submit --url URL` against a live server that imports (FILEJOB_IMPORT_ALLOW_PRIVATE:
the file is served on 127.0.0.1 here): one job per URL, next to a file's, followed and
downloaded as any job; the server fetched the file, the CLI uploaded nothing of it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.relay import Relay
from tests.support.servers import FILEJOB, LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def importing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("imports")
    env = {"FILEJOB_IMPORT_ALLOW_PRIVATE": "true"}
    process, url = start_server(root / "data", root / "server.log", env)
    try:
        yield LiveServer(url, process.pid, root / "data")
    finally:
        stop_server(process)


@pytest.fixture
def files_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder: its URL and the folder."""
    folder = tmp_path / "site"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}", folder
    finally:
        site.shutdown()
        site.server_close()


def test_submit_url_imports_and_follows_the_job(
    importing: LiveServer, files_site: tuple[str, Path], tmp_path: Path
) -> None:
    site, folder = files_site
    remote = os.urandom(300_000)
    (folder / "remote.bin").write_bytes(remote)
    (tmp_path / "local.bin").write_bytes(b"local\n")
    relay = Relay(importing.url)
    env = {**os.environ, "FILEJOB_SERVER": relay.url, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("FILEJOB_API_KEY", None)
    try:
        done = subprocess.run(
            [FILEJOB, "submit", "local.bin", "--url", f"{site}/remote.bin", "-p", "checksum",
             "-o", "out/", "--json"],
            env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    finally:
        relay.close()
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert [(e["file"], e.get("url")) for e in entries] == [
        ("local.bin", None),
        (None, f"{site}/remote.bin"),
    ]
    imported = entries[1]["job"]
    assert imported["status"] == "succeeded"
    assert imported["input"]["sha256"] == hashlib.sha256(remote).hexdigest()
    assert (tmp_path / entries[1]["output"]).exists()
    assert relay.sent < 64 * 1024  # the CLI sent no file of the import: the server fetched it
    assert relay.requests.count("POST /v1/jobs") == 2
