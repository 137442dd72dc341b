"""The README's curl examples, run exactly as written (only the port differs). docs/index.md
shows a copy, which tests/unit/test_docs.py keeps the same."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.servers import LiveServer

ROOT = Path(__file__).resolve().parents[3]


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- curl-examples")[1].split("<!-- /curl-examples -->")[0]
    return block.split("```sh\n", 1)[1].rsplit("```", 1)[0]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples_run_as_written(live: LiveServer, tmp_path: Path) -> None:
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    script = readme_block().replace("http://127.0.0.1:8000", live.url)
    assert script.count(live.url) >= 5
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "round trip OK" in done.stdout
    assert '"status":"succeeded"' in done.stdout
    assert '"name":"csv-to-parquet"' in done.stdout
    assert (
        gzip.decompress((tmp_path / "README.md.gz").read_bytes())
        == (tmp_path / "README.md").read_bytes()
    )


def test_readme_curl_examples_fail_loudly_without_a_server(tmp_path: Path) -> None:
    """Pasted into a shell (no `set -e`) with no server answering: every step says so with
    curl's own message, nothing prints a traceback, and nothing claims success."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    script = readme_block().replace("http://127.0.0.1:8000", url)
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in done.stderr
    assert done.stderr.count("Failed to connect") >= 5, done.stderr
    assert "round trip OK" not in done.stdout
