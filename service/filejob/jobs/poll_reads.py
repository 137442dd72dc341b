"""The poll's read: one job's `repository.POLL_COLUMNS` by id and owner, the query clients hammer.

Two ways to run it, chosen once for the database (`poll_reads_for`):
- `EngineReads`, any database: the cached Core select (`repository.poll_row`) on a pooled
  connection of the read engine.
- `SqliteLoopReads`, a SQLite file: the same statement, compiled once, on a plain `sqlite3`
  connection of its own, run on the event loop. A primary-key read from a WAL database does not
  wait for the writer (it reads the last committed snapshot), so it takes tens of
  microseconds, while a hand-off to aiosqlite's thread costs several round trips. The read is
  bounded: its busy timeout is short, and anything unusual (a lock that outlasts it, an I/O
  error) raises `ReadFellBack` so the caller reads again the ordinary way.

Either returns the row typed as the ORM types it (enums, aware datetimes, JSON as objects),
through the columns' own SQLAlchemy result processors: the two are interchangeable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from filejob.db.engine import Database
from filejob.jobs.model import Job
from filejob.jobs.repository import (
    POLL_COLUMNS,
    POLL_KINDS,
    PollOwner,
    poll_kind,
    poll_params,
    poll_query,
    poll_row,
)

# How long a loop read may wait on a lock before it gives up and falls back (SQLite's WAL
# readers only wait in rare cases: a recovery after a crash, a checkpoint restarting the log).
LOOP_BUSY_MS = 20


class ReadFellBack(Exception):
    """The quick read could not answer; read again with `EngineReads`."""


class PollReads(Protocol):
    async def row(self, job_id: str, owner: PollOwner) -> dict[str, Any] | None:
        """The job's POLL_COLUMNS by name, or None if `owner` (an owner id, None for the
        anonymous owner, or ANY_OWNER) has no such job."""
        ...

    def close(self) -> None: ...


class EngineReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def row(self, job_id: str, owner: PollOwner) -> dict[str, Any] | None:
        async with self.db.read_engine.connect() as connection:
            return await poll_row(connection, job_id, owner)

    def close(self) -> None:
        pass


class SqliteLoopReads:
    """See the module docstring. Opened lazily, so that it opens after migrations ran."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        dialect = sqlite_dialect.dialect(paramstyle="named")
        table: Table = Job.__table__  # type: ignore[assignment]
        self._sql = {kind: str(poll_query(kind).compile(dialect=dialect)) for kind in POLL_KINDS}
        self._convert: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, table.c[name].type.dialect_impl(dialect).result_processor(dialect, None))
            for name in POLL_COLUMNS
        ]

    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={LOOP_BUSY_MS}")
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    async def row(self, job_id: str, owner: PollOwner) -> dict[str, Any] | None:
        sql, params = self._sql[poll_kind(owner)], poll_params(job_id, owner)
        try:
            raw = self.connection().execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            self.close()  # the next read opens afresh
            raise ReadFellBack(str(exc)) from exc
        if raw is None:
            return None
        return {
            name: value if convert is None or value is None else convert(value)
            for (name, convert), value in zip(self._convert, raw, strict=True)
        }

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FallingBackReads:
    """`quick`, and `engine` whenever `quick` falls back."""

    def __init__(self, quick: SqliteLoopReads, engine: EngineReads) -> None:
        self.quick = quick
        self.engine = engine

    async def row(self, job_id: str, owner: PollOwner) -> dict[str, Any] | None:
        try:
            return await self.quick.row(job_id, owner)
        except ReadFellBack:
            return await self.engine.row(job_id, owner)

    def close(self) -> None:
        self.quick.close()


def poll_reads_for(db: Database) -> PollReads:
    """The loop read on a SQLite file, the engine's elsewhere."""
    url = make_url(db.url)
    engine = EngineReads(db)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return engine
    return FallingBackReads(SqliteLoopReads(url.database), engine)
