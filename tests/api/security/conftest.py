"""The hostile-input catalog's shared pieces: a snapshot of what the server keeps (stored files,
temp files, open temp descriptors, job rows) and helpers to build raw multipart bodies."""

from __future__ import annotations

import os
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from filejob.config import Settings

JOBS = "/v1/jobs"
BOUNDARY = "s3cur1ty-b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
PROBLEM_JSON = "application/problem+json"
# The SQLite database and its companions live in data_dir; they are read, not listed.
_DB_SUFFIXES = (
    "filejob.db",
    "filejob.db-wal",
    "filejob.db-shm",
    "filejob.db-journal",
)


@dataclass(frozen=True)
class Snapshot:
    """What the server keeps: files under blobs/ and tmp/ (relative path -> size), descriptors
    this process holds open on files in tmp/ (unnamed O_TMPFILE spools never show up in a
    listing), and the number of rows in `jobs`."""

    data_dir: Path
    files: dict[str, int]
    open_tmp_files: int
    job_rows: int


def take_snapshot(data_dir: Path) -> Snapshot:
    files: dict[str, int] = {}
    for top in ("blobs", "tmp"):
        root = data_dir / top
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.name.startswith(_DB_SUFFIXES):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed by a cleanup while we were listing
                continue
            if S_ISREG(stat.st_mode):
                files[str(path.relative_to(data_dir))] = stat.st_size
    return Snapshot(data_dir, files, _open_tmp_files(data_dir / "tmp"), job_rows(data_dir))


def job_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "filejob.db", timeout=5) as db:
        (count,) = db.execute("SELECT count(*) FROM jobs").fetchone()
    db.close()  # the context manager commits, it does not close
    return int(count)


def _open_tmp_files(tmp_dir: Path) -> int:
    prefix = str(tmp_dir.resolve()) + os.sep
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor, for one)
            continue
        count += target.startswith(prefix)
    return count


async def assert_unchanged(before: Snapshot, *, within: float = 2.0) -> None:
    """Assert the state is back to `before`, polling up to `within` seconds: a refused upload's
    spool may be closed by a cleanup that runs just after the response went out."""
    now = take_snapshot(before.data_dir)
    with anyio.move_on_after(within):
        while now != before:
            await anyio.sleep(0.02)
            now = take_snapshot(before.data_dir)
    assert now.files == before.files
    assert now.open_tmp_files == before.open_tmp_files
    assert now.job_rows == before.job_rows


@pytest.fixture
def before(app: FastAPI, settings: Settings) -> Snapshot:
    """The state once the app has started (and before the test sends anything)."""
    return take_snapshot(settings.data_dir)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"] == f"urn:filejob:problem:{code}"
    assert body["title"] and body["detail"]
    return body


# -- raw multipart ------------------------------------------------------------------------


def field_part(name: str, value: str | bytes, boundary: str = BOUNDARY) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )


def file_part(
    content: bytes,
    filename: bytes = b"input.bin",
    content_type: bytes = b"application/octet-stream",
    boundary: str = BOUNDARY,
) -> bytes:
    """A file part; `filename` goes into the quoted parameter byte for byte (escape it first)."""
    return (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: '
        + content_type
        + b"\r\n\r\n"
        + content
        + b"\r\n"
    )


def closing(boundary: str = BOUNDARY) -> bytes:
    return f"--{boundary}--\r\n".encode()


def upload_body(
    content: bytes,
    processor: str = "checksum",
    *,
    filename: bytes = b"input.bin",
    content_type: bytes = b"application/octet-stream",
    boundary: str = BOUNDARY,
) -> bytes:
    return (
        field_part("processor", processor, boundary)
        + file_part(content, filename, content_type, boundary)
        + closing(boundary)
    )


def quoted(name: str) -> bytes:
    """`name` as the UTF-8 bytes of a quoted-string parameter (backslash and quote escaped)."""
    return name.replace("\\", "\\\\").replace('"', '\\"').encode()


def is_safe_display_name(name: str, max_bytes: int = 255) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not any(unicodedata.category(ch)[0] in ("C", "Z") and ch != " " for ch in name)
        and len(name.encode()) <= max_bytes
        and unicodedata.is_normalized("NFC", name)
        and name not in (".", "..")
    )


def blob_paths(job_id: str) -> tuple[str, str]:
    """Where a job's input and (first attempt's) result live under the data dir."""
    shard = job_id[:2]
    return f"blobs/inputs/{shard}/{job_id}", f"blobs/results/{shard}/{job_id}.1"
