"""tus with the reference JavaScript client, tus-js-client 4 under Node, against `filejob serve`
on SQLite with local storage and on PostgreSQL with S3 (SeaweedFS): an upload in chunks that
becomes a job, an upload cut mid-PATCH by a relay that resumes, one sent as parallel partial
uploads joined by a final one (concatenation), and one whose server is SIGKILLed mid-PATCH and
restarted. (tus-js-client sends no Upload-Checksum: the checksum extension is tested with
tuspy.)

The client comes from the npm registry, installed once into a cache folder
(`~/.cache/filejob-tests/npm`, or FILEJOB_TEST_NPM_CACHE); without node and npm the tests
skip, saying so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.live.test_live_tus import CHUNK, Relay, Server, _finished_job, server

__all__ = ["server"]  # a fixture (SQLite; PostgreSQL and S3), used by name

SCRIPT = r"""
const fs = require("fs");
const tus = require("tus-js-client");
const [endpoint, path, chunkSize, parallel] = process.argv.slice(2);
let link = null;
const upload = new tus.Upload(fs.createReadStream(path), {
  endpoint,
  chunkSize: Number(chunkSize) || Infinity,
  parallelUploads: Number(parallel) || 1,
  // About a minute in all: a killed server's restart can take many seconds on a loaded machine.
  retryDelays: [0, 200, 500, 1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000, 8000],
  metadata: { filename: "input.bin", filetype: "application/octet-stream", processor: "checksum" },
  onAfterResponse(req, res) {
    const header = res.getHeader("Link");
    if (header) link = header;
  },
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, link }));
    process.exit(0); // not waiting for the idle keep-alive connection to close
  },
});
upload.start();
"""


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("tus-js-client needs node and npm, missing here (.ci/run installs both)")
    cache = Path(os.environ.get("FILEJOB_TEST_NPM_CACHE", Path.home() / ".cache/filejob-tests/npm"))
    modules = cache / "node_modules"
    if not (modules / "tus-js-client" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "tus-js-client@4"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return modules


def _node(
    node_modules: Path, endpoint: str, path: Path, chunk: int = 0, parallel: int = 1
) -> subprocess.Popen[str]:
    """tus-js-client uploading `path` to `endpoint`, started (see `_outcome`)."""
    script = path.with_name("upload.js")
    script.write_text(SCRIPT)
    return subprocess.Popen(
        ["node", str(script), f"{endpoint}/v1/uploads", str(path), str(chunk), str(parallel)],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outcome(node: subprocess.Popen[str]) -> dict[str, Any]:
    """What the client printed once its upload succeeded: the upload's URL and its Link."""
    try:
        out, err = node.communicate(timeout=120)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
    assert node.returncode == 0, err
    return dict(json.loads(out))


def _upload(
    node_modules: Path, endpoint: str, path: Path, chunk: int = 0, parallel: int = 1
) -> dict[str, Any]:
    return _outcome(_node(node_modules, endpoint, path, chunk, parallel))


def test_tus_js_client_uploads_in_chunks(
    node_modules: Path, server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content := os.urandom(3 * CHUNK + 77))
    outcome = _upload(node_modules, server.url, path, chunk=CHUNK)
    job = _finished_job(server.url, outcome["url"])
    assert outcome["link"] == f'</v1/jobs/{job["id"]}>; rel="monitor"'
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


def test_tus_js_client_resumes_after_a_cut(
    node_modules: Path, server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content := os.urandom(6 * CHUNK))
    relay = Relay(server.port, cut_at=4 * CHUNK)  # one PATCH for the whole file, cut in it
    try:
        outcome = _upload(node_modules, relay.url, path)
        job = _finished_job(relay.url, outcome["url"])
    finally:
        relay.close()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    # The bytes that arrived before the cut were kept: the client went on from there.
    assert 0 < relay.offsets[-1] <= 4 * CHUNK


def test_tus_js_client_parallel_uploads(node_modules: Path, server: Server, tmp_path: Path) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content := os.urandom(5 * CHUNK + 3))
    relay = Relay(server.port, cut_at=CHUNK)  # one of the parts is cut, and resumes
    try:
        outcome = _upload(node_modules, relay.url, path, parallel=3)
        job = _finished_job(relay.url, outcome["url"])
    finally:
        relay.close()
    assert outcome["link"] == f'</v1/jobs/{job["id"]}>; rel="monitor"'
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert max(relay.offsets) > 0  # the cut part went on from where it was cut


def test_tus_js_client_resumes_after_the_server_is_killed_mid_patch(
    node_modules: Path, server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content := os.urandom(6 * CHUNK))
    relay = Relay(server.port, hold_at=3 * CHUNK)  # the second PATCH stops half-way, held
    try:
        node = _node(node_modules, relay.url, path, chunk=2 * CHUNK)
        assert relay.held.wait(60)
        server.kill()  # SIGKILL while a PATCH is in flight
        server.start()  # the same data dir, a new port
        relay.upstream = server.port
        relay.release.set()  # the held connection drops; the client retries from HEAD's offset
        outcome = _outcome(node)
        job = _finished_job(relay.url, outcome["url"])
    finally:
        relay.close()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    # It went on from an acknowledged offset, not from zero: one PATCH only at offset 0, and
    # the PATCH after the kill at the first one's end or later.
    assert relay.offsets.count(0) == 1, relay.offsets
    assert relay.offsets[2] >= 2 * CHUNK, relay.offsets
