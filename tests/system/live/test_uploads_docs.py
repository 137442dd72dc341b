"""docs/uploads.md's client examples (tuspy, tus-js-client, curl), run as written against a
live server (only the port differs), each ending in a job that succeeds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import LiveServer
from tests.support.wait import wait_until
from tests.system.live.test_live_tus_js import node_modules

__all__ = ["node_modules"]  # a fixture, used by name

DOC = Path(__file__).resolve().parents[3] / "docs" / "uploads.md"
_LINK = re.compile(r'^</v1/jobs/([A-Za-z0-9_-]+)>; rel="monitor"$', re.MULTILINE)


def example(name: str, live: LiveServer) -> str:
    """The fenced block after `<!-- example:name -->`, pointed at `live`."""
    text = DOC.read_text().split(f"<!-- example:{name} -->\n", 1)[1]
    block = text.split("```", 2)[1].split("\n", 1)[1]
    assert "http://127.0.0.1:8000" in block
    return block.replace("http://127.0.0.1:8000", live.url)


def succeeded(live: LiveServer, output: str) -> dict[str, object]:
    """The job named by the `Link` the example printed, once it has succeeded."""
    found = _LINK.search(output)
    assert found, output
    with live.client() as http:

        def done() -> dict[str, object] | None:
            job = http.get(f"/v1/jobs/{found.group(1)}").json()
            assert job["status"] != "failed", job
            return job if job["status"] == "succeeded" else None

        return wait_until(done, timeout=60)


def run(argv: list[str], cwd: Path, **env: str) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tuspy_example(live: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(example("tuspy", live))
    job = succeeded(live, run([sys.executable, "example.py"], tmp_path))
    assert job["input"]["filename"] == "video.mp4"  # type: ignore[index]
    assert job["input"]["size"] == 3 * 1024 * 1024  # type: ignore[index]


def test_tus_js_client_example(live: LiveServer, node_modules: Path, tmp_path: Path) -> None:
    (tmp_path / "example.js").write_text(example("tus-js-client", live))
    output = run(["node", "example.js"], tmp_path, NODE_PATH=str(node_modules))
    job = succeeded(live, output)
    assert job["processor"] == "thumbnail"
    assert job["result"]["content_type"] == "image/jpeg"  # type: ignore[index]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_example(live: LiveServer, tmp_path: Path) -> None:
    script = example("curl", live)
    output = run(["bash", "-euo", "pipefail", "-c", script], tmp_path)
    job = succeeded(live, output)
    upload = json.loads(output.strip().splitlines()[-1])
    assert upload["job_id"] == job["id"]
    assert upload["offset"] == upload["length"] == len("hello, resumable world\n")
