"""What an app under test keeps: its job rows, the storage backend's blobs and its temp files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from filejob.jobs.model import Job


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def stored_files(data_dir: Path) -> list[Path]:
    """Blobs and temp files (not the database) of the embedded profile's folder."""
    return files_under(data_dir / "blobs") + files_under(data_dir / "tmp")


def blob_paths(job_id: str) -> tuple[str, str]:
    """Where a job's input and (first attempt's) result live under the embedded data dir."""
    shard = job_id[:2]
    return f"blobs/inputs/{shard}/{job_id}", f"blobs/results/{shard}/{job_id}.1"


async def blob_bytes(app: Any, key: str) -> bytes:
    """A stored blob's content, read through the storage backend (any profile)."""
    reader = await app.state.services.jobs.storage.open(key)
    try:
        return reader.read_at(0, reader.size)
    finally:
        reader.close()


async def stored(app: Any) -> list[str]:
    """What jobs left behind, on any profile: the storage backend's keys ("inputs/<id>",
    "results/<id>") and the local temp files ("tmp/<name>"; both backends spool there)."""
    storage = app.state.services.jobs.storage
    keys = sorted(info.key for info in await storage.list())
    return keys + sorted(f"tmp/{p.name}" for p in storage.temp.directory.iterdir() if p.is_file())


async def job_rows(app: Any) -> int:
    """How many rows `jobs` holds."""
    async with app.state.services.jobs.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)))


async def assert_clean(app: Any) -> None:
    """Nothing stored and no temp file left."""
    leftovers = await stored(app)
    assert leftovers == [], leftovers


def job_states(data_dir: Path) -> dict[str, tuple[str, int]]:
    """Each job's (status, attempts), read from the embedded profile's SQLite database."""
    with sqlite3.connect(data_dir / "filejob.db") as db:
        return {i: (s, a) for i, s, a in db.execute("select id, status, attempts from jobs")}
