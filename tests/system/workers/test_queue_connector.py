"""The worker's connection to procrastinate's queue costs one round trip per statement: no
BEGIN and COMMIT around it, and no ping before it unless the connection sat idle."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
import pytest
from procrastinate.manager import JobManager
from psycopg.pq import TransactionStatus

from filejob.config import Settings
from filejob.db.engine import conninfo
from filejob.jobs.executors import queue_loop
from filejob.jobs.executors.queue_loop import queue_connector


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[psycopg.AsyncConnection[Any]]:
    """The connections the pool pinged before handing them out."""
    pinged: list[psycopg.AsyncConnection[Any]] = []
    real = psycopg_pool.AsyncConnectionPool.check_connection

    async def counted(connection: psycopg.AsyncConnection[Any]) -> None:
        pinged.append(connection)
        await real(connection)

    monkeypatch.setattr(psycopg_pool.AsyncConnectionPool, "check_connection", counted)
    return pinged


async def test_statements_commit_alone_and_busy_connections_go_unpinged(
    settings: Settings, pings: list[psycopg.AsyncConnection[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = queue_connector(conninfo(settings.database_url), max_size=2)
    await connector.open_async()
    try:
        manager = JobManager(connector)
        for _ in range(5):
            assert await manager.check_connection_async()
        async with connector.pool.connection() as connection:
            assert connection.autocommit
            await connection.execute("SELECT 1")
            assert connection.pgconn.transaction_status == TransactionStatus.IDLE
        assert pings == []  # each was used a moment before

        monkeypatch.setattr(queue_loop, "IDLE_BEFORE_CHECK", 0.0)  # as if idle for long
        assert await manager.check_connection_async()
        assert len(pings) == 1
    finally:
        await connector.close_async()
