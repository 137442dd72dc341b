"""Engines and transactions. Built in the app's lifespan, passed down, never global."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def _sqlite_engine(
    url: str, *, begin: str | None, durable: bool, connections: int, busy_timeout: float
) -> AsyncEngine:
    """`begin`: the statement that opens a transaction, or None for autocommit reads."""
    # A fixed pool: every connection is opened up front by `Database.warm()`, so the process
    # holds the same descriptors from its first request to its last.
    # Autocommit readers have nothing to roll back, neither when a connection returns to the
    # pool nor when SQLAlchemy ends the transaction it began implicitly: each skipped rollback
    # is a round trip to aiosqlite's thread saved on every read.
    readers: dict[str, Any] = (
        {} if begin else {"isolation_level": "AUTOCOMMIT", "skip_autocommit_rollback": True}
    )
    engine = create_async_engine(
        url,
        connect_args={"timeout": busy_timeout},
        pool_size=connections,
        max_overflow=0,
        pool_timeout=60,
        pool_reset_on_return="rollback" if begin else None,
        **readers,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        # SQLite itself retries a locked database this long before giving up (-> 503).
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql(begin)

    return engine


def conninfo(database_url: str) -> str:
    """psycopg's form of a SQLAlchemy PostgreSQL URL (without the `+driver`)."""
    scheme, rest = database_url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url


class Database:
    """A reader and a writer session factory over one database.

    On SQLite, writes go through one connection and begin with BEGIN IMMEDIATE: SQLite admits
    one writer at a time anyway, so writers wait in the pool's FIFO instead of polling in the
    busy handler, and a transaction that reads then writes can never hit the SQLITE_BUSY that
    busy_timeout does not cover. Reads run in autocommit on their own connections: each SELECT
    sees one consistent WAL snapshot and never waits for the writer.
    """

    READ_CONNECTIONS = 4

    def __init__(self, url: str, *, durable: bool = True, busy_timeout: float = 10.0) -> None:
        self.url = url
        self._warm_sizes: tuple[int, int] = (0, 0)
        if url.startswith("sqlite"):
            self.write_engine = _sqlite_engine(
                url,
                begin="BEGIN IMMEDIATE",
                durable=durable,
                connections=1,
                busy_timeout=busy_timeout,
            )
            self.read_engine = _sqlite_engine(
                url,
                begin=None,
                durable=durable,
                connections=self.READ_CONNECTIONS,
                busy_timeout=busy_timeout,
            )
            self._warm_sizes = (1, self.READ_CONNECTIONS)
        else:
            self.write_engine = self.read_engine = create_async_engine(url, pool_pre_ping=True)
        # One connection takes every write (SQLite): writers that can commit their work
        # together should (jobs/commits.py groups new jobs' rows).
        self.single_writer = url.startswith("sqlite")
        self._writer = async_sessionmaker(self.write_engine, expire_on_commit=False)
        # Called after each committed write of this process (the job watcher's wake-up).
        self.after_commit: list[Callable[[], None]] = []
        self._reader = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction committed when the block exits normally, rolled back otherwise."""
        async with self._writer() as session, session.begin():
            yield session
        for callback in self.after_commit:
            callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._reader() as session:
            yield session

    async def warm(self) -> None:
        """Open every pooled connection now (see `_sqlite_engine`)."""
        for engine, size in zip(
            (self.write_engine, self.read_engine), self._warm_sizes, strict=True
        ):
            connections = [await engine.connect() for _ in range(size)]
            for connection in connections:
                await connection.close()

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


async def sqlite_threads_stopped(within: float = 1.0) -> None:
    """Wait (up to `within` seconds) for aiosqlite's connection threads to end, before the
    event loop closes. After a failed connect, aiosqlite (0.22) queues its thread's stop
    without awaiting it; if the loop closes first, the thread's late reply prints a
    traceback at exit, under the one-line refusal that was meant to be all the user sees."""
    threads = [
        thread
        for thread in threading.enumerate()
        if thread.name.endswith("(_connection_worker_thread)")
    ]
    deadline = time.monotonic() + within

    def join() -> None:
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    await anyio.to_thread.run_sync(join)
