"""The fuzzed server: `FILEJOB_AUTH=required`, one API key without rate, job or storage
limits, and a few seeded jobs for path parameters to aim at."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from filejob.client.api import FilejobClient
from tests.support.jobs import submit_bytes
from tests.support.servers import create_key
from tests.support.wait import wait_until

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


def unlimited_key(data_dir: Path, env: dict[str, str]) -> str:
    """An API key without limits, created with the CLI (the database is migrated)."""
    unlimited = ["--rate-limit", "0", "--max-active-jobs", "0", "--max-storage-bytes", "0"]
    return create_key(data_dir, *unlimited, name="fuzz", **env)


def seed_jobs(server: FuzzServer) -> None:
    with FilejobClient(server.url, server.api_key, timeout=30) as client:

        def seed(content: bytes, processor: str, once: bool = False) -> str:
            job = submit_bytes(
                client, content, processor, filename="seed.bin", delete_after_download=once
            )
            return str(job["id"])

        def wait_for(job_id: str, status: str) -> None:
            wait_until(
                lambda: client.job(job_id)["status"] == status,
                timeout=30,
                message=f"seeded job {job_id} did not become {status} in 30 s",
            )

        succeeded = seed(b"fuzz seed\n" * 100, "checksum")
        failed = seed(PNG_MAGIC + b"not really a png", "thumbnail")
        once = seed(b"read me once", "checksum", once=True)
        expired = seed(b"already read", "checksum", once=True)
        disposable = [seed(b"delete me %d" % n, "checksum") for n in range(2)]
        for job_id in (succeeded, once, expired, *disposable):
            wait_for(job_id, "succeeded")
        wait_for(failed, "failed")
        assert client.http.get(f"/v1/jobs/{expired}/result").status_code == 200
        wait_for(expired, "expired")  # the clean-up runs once the body was sent
    server.kept[:] = [succeeded, failed, once, expired]
    server.disposable[:] = disposable
