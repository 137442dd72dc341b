"""The procrastinate executor, API side: a job enters procrastinate's queue in PostgreSQL in
the very transaction that inserts its row, and `filejob worker` processes run it
(service/filejob/worker.py). The API server itself never runs a processor.

Only procrastinate's SQL functions are called here, on filejob's own connection, so that the
`record` shares the row's transaction; the functions come from the schema migration 0005.
"""

from __future__ import annotations

import json

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.db.engine import Database
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus

QUEUE = "filejob"
TASK = "filejob.run_job"

_DEFER = text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, NULL, NULL, "
    "CAST(:args AS jsonb), CAST(:at AS timestamptz))::procrastinate_job_to_defer_v1])"
)
# Marks the queue entry for abort; a trigger NOTIFYs the worker running it.
_ABORT = text("SELECT procrastinate_cancel_job_v1(:ref, true, false)")
_LOCK = text("SELECT status FROM procrastinate_jobs WHERE id = :ref FOR UPDATE")
_FAIL = text("SELECT procrastinate_finish_job_v1(:ref, 'failed', false)")


async def defer(session: AsyncSession, job_id: str) -> int:
    """A new queue entry for the job, due now, in the session's transaction; its id."""
    refs = await session.scalar(
        _DEFER, {"queue": QUEUE, "task": TASK, "args": json.dumps({"job_id": job_id}), "at": None}
    )
    return int(refs[0])


async def retire_stalled(session: AsyncSession, ref: int) -> bool:
    """End a stalled worker's queue entry (`failed`), unless it has moved on meanwhile; the
    job then gets a new entry. A worker presumed dead that is in fact alive can then not
    finish, or be mistaken for, the entry of the attempt that replaces it. Locked, so two
    rescuers cannot both retire it."""
    if await session.scalar(_LOCK, {"ref": ref}) != "doing":
        return False
    await session.execute(_FAIL, {"ref": ref})
    return True


class ProcrastinateExecutor:
    runs_jobs_here = False

    def __init__(self, db: Database, *, stop_timeout: float = 5.0) -> None:
        self.db = db
        self.stop_timeout = stop_timeout  # a cancel stops the processor within this, or says not

    async def start(self) -> None:
        pass

    async def record(self, session: AsyncSession, job: Job) -> None:
        job.queue_ref = await defer(session, job.id)

    async def schedule(
        self, job_id: str, upload: IncomingFile | None = None, *, delay: float = 0.0
    ) -> None:
        """The job is already queued (in `record`); workers read its input from storage."""
        if upload is not None:
            await upload.release()

    async def cancel(self, job_id: str) -> bool:
        """Ask the worker running the job to abort it, and wait until it has (True). False if
        no live worker settled it within `stop_timeout` (it died meanwhile): the caller then
        settles the row itself, and the stalled-job rescue finds nothing to run."""
        async with self.db.write() as session:
            job = await JobRepository(session).get(job_id)
            if job is None or job.queue_ref is None:
                return False
            if await session.scalar(_ABORT, {"ref": job.queue_ref}) is None:
                return False  # the queue entry already ended
        with anyio.move_on_after(self.stop_timeout):
            while True:
                async with self.db.read() as session:
                    job = await JobRepository(session).get(job_id)
                if job is None or job.status is not JobStatus.RUNNING:
                    return True
                await anyio.sleep(0.05)
        return False

    def running(self) -> bool:
        return True  # the queue is the database (checked on its own); workers run the jobs

    def knows(self, job_id: str) -> bool:
        return True  # every row has its queue entry: they were committed together

    async def finish_running(self, grace: float) -> None:
        pass  # nothing runs here

    async def shutdown(self) -> None:
        pass
