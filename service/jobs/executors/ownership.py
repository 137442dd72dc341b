"""One in-process executor per database.

A starting in-process server resumes every unfinished job it finds; two of them on one
database would both run the same jobs. So the server that runs jobs holds an exclusive lock
for its whole life, and a second one refuses to start, saying who holds it:

- SQLite (one machine): `flock` on `<database file>.lock` (the database, not the data dir: two
  data dirs may name one database), released by the kernel when the process ends, however it
  ends; the file records the holder's PID for the message.
- PostgreSQL: a session advisory lock on a connection of its own, released when the server
  disconnects (or dies). `filejob db upgrade` also checks it before moving the deployment to
  procrastinate workers (service/deployment.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import psycopg

from service.deployment import ADVISORY_KEY, RefusedToStart


class ExecutorBusy(RefusedToStart):
    """Another process already runs this database's jobs."""


class ExecutorLock(Protocol):
    def acquire(self) -> None:
        """Take the lock or raise `ExecutorBusy` at once (never waits)."""
        ...

    def release(self) -> None: ...


class DatabaseFileLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ExecutorBusy(
                f"another filejob serve (pid {holder}) already runs the jobs of "
                f"{self.database}: stop it first, or give this one a database of its own "
                "(FILEJOB_DATA_DIR, FILEJOB_DATABASE_URL)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class AdvisoryLock:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._connection: psycopg.Connection | None = None

    def acquire(self) -> None:
        connection = psycopg.connect(self.conninfo, autocommit=True)
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
        if not (row and row[0]):
            connection.close()
            raise ExecutorBusy(
                "another in-process filejob serve already runs this database's jobs: stop it "
                "first, or run several API servers with FILEJOB_EXECUTOR=procrastinate and "
                "`filejob worker` processes"
            )
        self._connection = connection

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()  # the session ends, and its advisory lock with it
            self._connection = None
