"""A snapshot of what an embedded server keeps (stored files, temp files, open temp
descriptors, job rows), to check that a refused request left all of it as it was."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from tests.support.wait import wait_until_async

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
    return Snapshot(data_dir, files, _open_tmp_files(data_dir / "tmp"), _job_rows(data_dir))


async def assert_unchanged(before: Snapshot, *, within: float = 2.0) -> None:
    """Assert the state is back to `before`, polling up to `within` seconds: a refused upload's
    spool may be closed by a cleanup that runs just after the response went out."""

    async def back() -> bool:
        return take_snapshot(before.data_dir) == before

    with contextlib.suppress(AssertionError):  # the asserts below say what differs
        await wait_until_async(back, timeout=within)
    now = take_snapshot(before.data_dir)
    assert now.files == before.files
    assert now.open_tmp_files == before.open_tmp_files
    assert now.job_rows == before.job_rows


def _job_rows(data_dir: Path) -> int:
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
