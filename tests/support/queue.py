"""The distributed profile's queue: `filejob worker`'s `QueueWorker` run as a task in the
test's event loop, a drain that waits on procrastinate's queue in PostgreSQL, and a job's
entries in it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
from fastapi import FastAPI
from sqlalchemy import text

from filejob.config import Settings
from filejob.db.engine import conninfo
from filejob.processors.registry import ProcessorRegistry
from filejob.worker import QueueWorker
from tests.support.wait import wait_until_async

DRAIN_LIMIT = 60  # seconds; no test's jobs take nearly that long
_PENDING = """
SELECT count(*) FROM procrastinate_jobs
 WHERE status = 'doing' OR (status = 'todo' AND (%(later)s OR scheduled_at IS NULL
                                                 OR scheduled_at <= now()))
"""


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings,
    registry: ProcessorRegistry,
    *,
    concurrency: int | None = None,
    metrics_port: int | None = None,
) -> AsyncIterator[QueueWorker]:
    """A worker on the settings' queue until the block ends (then stopped as on SIGTERM)."""
    worker = QueueWorker(
        settings,
        registry,
        concurrency=concurrency or settings.workers,
        install_signal_handlers=False,
        metrics_port=metrics_port,
    )
    task = asyncio.create_task(worker.run(), name="test-queue-worker")
    try:
        # Stopping it half-started can hang the connection pool's opening.
        ready = asyncio.create_task(worker.ready.wait())
        await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        assert worker.ready.is_set(), task.exception() if task.done() else "not ready in 30 s"
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_queue_until_idle(database_url: str, *, retries: bool = True) -> None:
    """Wait until the queue holds nothing running or due (with `retries`: nothing at all)."""
    async with await psycopg.AsyncConnection.connect(
        conninfo(database_url), autocommit=True
    ) as connection:

        async def idle() -> bool:
            cursor = await connection.execute(_PENDING, {"later": retries})
            row = await cursor.fetchone()
            return row is not None and row[0] == 0

        await wait_until_async(idle, timeout=DRAIN_LIMIT, message="the queue did not drain")


async def queue_entries(app: FastAPI, job_id: str) -> list[tuple[int, str]]:
    """The job's procrastinate entries (id, status), oldest first."""
    async with app.state.services.jobs.db.read() as session:
        rows = await session.execute(
            text(
                "SELECT id, status::text FROM procrastinate_jobs "
                "WHERE args->>'job_id' = :job_id ORDER BY id"
            ),
            {"job_id": job_id},
        )
        return [(row[0], row[1]) for row in rows]
