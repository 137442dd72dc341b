"""The executor contract: how accepted jobs get run. Chosen once at start-up."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job


class Executor(Protocol):
    # True: jobs run in this process, which resumes what a previous one left unfinished and
    # rescues lost hand-offs. False: a shared queue's workers run them, and rescue each other.
    runs_jobs_here: bool

    async def start(self) -> None:
        """Begin taking jobs (called in the app's lifespan)."""
        ...

    async def record(self, session: AsyncSession, job: Job) -> None:
        """Called in the transaction that inserts the job's row, before the insert: a queue
        kept in the same database records the job here (both commit, or neither does)."""
        ...

    async def schedule(
        self, job_id: str, upload: IncomingFile | None = None, *, delay: float = 0.0
    ) -> None:
        """Schedule a queued job to run once `delay` seconds have passed, and return at once.
        The executor owns `upload` from here on (a still-open copy of the stored input, or
        None to read it from storage) and releases it whatever happens."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Stop the job if it is running here; True once it has stopped, False if it was not
        running here."""
        ...

    def running(self) -> bool:
        """Whether it takes jobs now (for readiness)."""
        ...

    def knows(self, job_id: str) -> bool:
        """Whether the job is waiting, due for a retry or running here (a queued job nobody
        knows lost its hand-off and is re-scheduled by the sweeper)."""
        ...

    async def finish_running(self, grace: float) -> None:
        """Start no more jobs here; wait up to `grace` seconds for the running ones."""
        ...

    async def shutdown(self) -> None:
        """Stop taking jobs, interrupt running ones (they return to `queued` for the next
        start), release everything held."""
        ...
