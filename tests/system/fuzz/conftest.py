"""A real `filejob serve` for the fuzz run: `FILEJOB_AUTH=required`, one API key without rate,
job or storage limits, and a few seeded jobs for path parameters to aim at."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.system.live.conftest import FILEJOB, start_server, stop_server

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class FuzzServer:
    url: str
    pid: int
    api_key: str
    log: Path
    # Real job ids. `kept` serve the read operations (a succeeded job, a failed one, an
    # expired one and one that deletes its files once downloaded); `disposable` are for DELETE.
    kept: list[str] = field(default_factory=list)
    disposable: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def server_environment() -> dict[str, str]:
    return {
        "FILEJOB_AUTH": "required",
        "FILEJOB_SECRET_KEY": secrets.token_urlsafe(32),
        # Server-wide key limits, all unlimited (the key below also sets its own): the fuzz
        # sends hundreds of requests a minute and leaves accepted jobs behind.
        "FILEJOB_RATE_LIMIT": "0",
        "FILEJOB_MAX_ACTIVE_JOBS": "0",
        "FILEJOB_MAX_STORAGE_BYTES": "0",
    }


def create_key(data_dir: Path, env: dict[str, str]) -> str:
    """An API key, created with the CLI as an operator would (the database is migrated)."""
    unlimited = ["--rate-limit", "0", "--max-active-jobs", "0", "--max-storage-bytes", "0"]
    created = subprocess.run(
        [FILEJOB, "keys", "create", "--name", "fuzz", *unlimited],
        env={**os.environ, "FILEJOB_DATA_DIR": str(data_dir), **env},
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"^api key:\s+(\S+)$", created.stdout, re.MULTILINE)
    assert match, created.stdout
    return match.group(1)


def _submit(client: httpx.Client, content: bytes, processor: str, **fields: str) -> str:
    response = client.post(
        "/v1/jobs",
        data={"processor": processor, **fields},
        files={"file": ("seed.bin", content, "application/octet-stream")},
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _wait_for(client: httpx.Client, job_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}").json()["status"] == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"seeded job {job_id} did not become {status} in 30 s")


def seed_jobs(server: FuzzServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        succeeded = _submit(client, b"fuzz seed\n" * 100, "checksum")
        failed = _submit(client, PNG_MAGIC + b"not really a png", "thumbnail")
        once = _submit(client, b"read me once", "checksum", delete_after_download="true")
        expired = _submit(client, b"already read", "checksum", delete_after_download="true")
        disposable = [_submit(client, b"delete me %d" % n, "checksum") for n in range(2)]
        for job_id in (succeeded, once, expired, *disposable):
            _wait_for(client, job_id, "succeeded")
        _wait_for(client, failed, "failed")
        assert client.get(f"/v1/jobs/{expired}/result").status_code == 200
        _wait_for(client, expired, "expired")  # the clean-up runs once the body was sent
    server.kept[:] = [succeeded, failed, once, expired]
    server.disposable[:] = disposable


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    root = tmp_path_factory.mktemp("fuzz")
    data_dir, log = root / "data", root / "server.log"
    env = server_environment()
    process, url = start_server(data_dir, log, **env)  # `filejob db upgrade`, then serve
    try:
        server = FuzzServer(url, process.pid, create_key(data_dir, env), log)
        seed_jobs(server)
        yield server
    finally:
        stop_server(process)
