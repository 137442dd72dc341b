"""Raw uploads, digests and Idempotency-Key as scripts send them: real curl (`-T` with
`-X POST`, `--data-binary @file`) against a real `filejob serve`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import LiveServer, start_server, stop_server
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

LIMIT = 16 * 1024 * 1024  # FILEJOB_MAX_UPLOAD_BYTES of this module's server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live-raw")
    data_dir = root / "data"
    process, url = start_server(
        data_dir, root / "server.log", {"FILEJOB_MAX_UPLOAD_BYTES": str(LIMIT)}
    )
    try:
        yield LiveServer(url, process.pid, data_dir)
    finally:
        stop_server(process)


def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """Run curl; its last response's status, headers (lower-case names) and body (a `100
    Continue` before it is skipped)."""
    with tempfile.TemporaryDirectory() as scratch:
        head, body = Path(scratch, "head"), Path(scratch, "body")
        command = ["curl", "-sS", "-D", str(head), "-o", str(body), *args]
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr.decode()
        blocks = [b for b in head.read_bytes().decode("latin-1").split("\r\n\r\n") if b.strip()]
        status_line, *lines = blocks[-1].split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers, body.read_bytes()


def finished(live: LiveServer, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        _, _, body = curl(f"{live.url}/v1/jobs/{job_id}")
        job: dict[str, Any] = json.loads(body)
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_until(done, timeout=30, message=f"job {job_id} did not finish")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "rates.csv"
    path.write_bytes(b"day,rate\n" + b"".join(b"%d,%d\n" % (n, n * 7) for n in range(200_000)))
    return path


def test_curl_upload_file_with_post_is_a_job(live: LiveServer, data: Path) -> None:
    # Over 1 MiB: curl sends `Expect: 100-continue` and waits for the server's go-ahead.
    assert data.stat().st_size > 1024 * 1024
    status, headers, body = curl(
        "-T", str(data), "-X", "POST", f"{live.url}/v1/jobs?processor=checksum&filename=rates.csv"
    )
    assert status == 202, body
    job = json.loads(body)
    assert headers["location"] == f"/v1/jobs/{job['id']}"
    content = data.read_bytes()
    assert job["input"] == {
        "filename": "rates.csv",
        "content_type": "text/csv",  # sniffed as text, named by its extension
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    done = finished(live, job["id"])
    assert done["status"] == "succeeded", done
    _, _, result = curl(f"{live.url}/v1/jobs/{job['id']}/result")
    assert json.loads(result)["sha256"] == job["input"]["sha256"]


def test_curl_data_binary_with_type_name_and_digest(live: LiveServer, data: Path) -> None:
    digest = base64.b64encode(hashlib.sha256(data.read_bytes()).digest()).decode()
    status, _, body = curl(
        "--data-binary", f"@{data}",
        "-H", "Content-Type: text/csv",
        "-H", "Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.csv",
        "-H", f"Repr-Digest: sha-256=:{digest}:",
        f"{live.url}/v1/jobs?processor=compress&params=%7B%22format%22%3A%22gzip%22%7D",
    )  # fmt: skip
    assert status == 202, body
    job = json.loads(body)
    assert (job["input"]["filename"], job["input"]["content_type"]) == ("€ rates.csv", "text/csv")
    assert job["params"]["format"] == "gzip"


def test_curl_with_a_wrong_digest_is_refused(live: LiveServer, data: Path) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    before = sorted(p.name for p in (live.data_dir / "blobs").rglob("*") if p.is_file())
    status, _, body = curl(
        "--data-binary", f"@{data}", "-H", f"Repr-Digest: sha-256=:{wrong}:",
        f"{live.url}/v1/jobs?processor=checksum",
    )  # fmt: skip
    assert status == 422 and json.loads(body)["code"] == "digest_mismatch"
    after = sorted(p.name for p in (live.data_dir / "blobs").rglob("*") if p.is_file())
    assert after == before


def test_curl_retried_with_an_idempotency_key_makes_one_job(live: LiveServer, data: Path) -> None:
    key = f"Idempotency-Key: {os.urandom(8).hex()}"
    url = f"{live.url}/v1/jobs?processor=checksum"
    first = curl("-T", str(data), "-X", "POST", "-H", key, url)
    again = curl("-T", str(data), "-X", "POST", "-H", key, url)
    assert (first[0], again[0]) == (202, 202)
    assert json.loads(again[2])["id"] == json.loads(first[2])["id"]
    assert "idempotent-replayed" not in first[1]
    assert again[1]["idempotent-replayed"] == "true"
    other = curl("--data-binary", "other bytes", "-H", key, url)
    assert other[0] == 422 and json.loads(other[2])["code"] == "idempotency_key_reused"


def test_curl_over_the_limit_is_413_before_the_body(live: LiveServer, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(LIMIT + 1)  # sparse: nothing to write
    status, _, body = curl("-T", str(big), "-X", "POST", f"{live.url}/v1/jobs?processor=checksum")
    assert status == 413 and json.loads(body)["code"] == "payload_too_large"
