"""One in-process executor per database.

A starting in-process server resumes every unfinished job it finds; two of them on one
database would both run the same jobs. So the server that runs jobs holds an exclusive lock
for its whole life, and a second one refuses to start, saying who holds it:

- SQLite (one machine): `flock` on `<database file>.lock` (the database, not the data dir: two
  data dirs may name one database), released by the kernel when the process ends, however it
  ends; the file records the holder's PID for the message.
- PostgreSQL: a session advisory lock on a connection of its own, released when the server
  disconnects (or dies). `filejob db upgrade` also checks it before moving the deployment to
  procrastinate workers (service/filejob/db/deployment.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg.conninfo import make_conninfo

from filejob.db.deployment import ADVISORY_KEY, RefusedToStart

log = logging.getLogger(__name__)

_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class ExecutorBusy(RefusedToStart):
    """Another process already runs this database's jobs."""


class ExecutorLock(Protocol):
    def acquire(self) -> None:
        """Take the lock or raise `ExecutorBusy` at once (never waits)."""
        ...

    def release(self) -> None: ...

    def held(self) -> bool:
        """Whether the lock is still ours, taking it again if it was lost without another
        process taking it; False if another one has it now."""
        ...


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

    def held(self) -> bool:
        return self._fd is not None  # a flock lasts as long as its descriptor


class AdvisoryLock:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._connection: psycopg.Connection | None = None

    def acquire(self) -> None:
        # Keepalives: a connection cut without a word is noticed in about a minute, not hours.
        conninfo = make_conninfo(self.conninfo, **_KEEPALIVES)
        connection = psycopg.connect(conninfo, autocommit=True)
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

    def held(self) -> bool:
        """A session-level lock ends with its session: a database restart or failover, an
        idle-session timeout or a cut connection releases it while this server runs on."""
        if self._connection is not None:
            try:
                self._connection.execute("SELECT 1")
                return True
            except psycopg.Error:
                log.warning("the session holding this server's executor lock was lost")
        self.release()
        try:
            self.acquire()
        except (ExecutorBusy, psycopg.Error):
            return False
        log.info("executor lock taken again")
        return True
