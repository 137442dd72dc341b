"""The `job_attempts` table: each run of a job, from its claim to how it ended.

The runner writes it inside the transactions it already has (jobs/repository.py runs the
prebuilt statements of jobs/statements.py): a claim opens an attempt, the write that settles
the job closes it. Reads are for the job's timeline (`GET /v1/jobs/{id}/attempts`).

`number` counts every attempt that started, 1, 2, 3...: one that a graceful shutdown cut
short is in the history, though the job's `attempts` count gives it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Integer, String, Text, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.orm import Base, UTCDateTime
from filejob.jobs.model import _enum_column
from filejob.jobs.states import JobStatus

if TYPE_CHECKING:
    from filejob.jobs.service import JobService


class AttemptOutcome(StrEnum):
    """How one attempt ended (None while it runs). The values are the API's strings."""

    SUCCEEDED = "succeeded"
    """It produced the job's result."""
    FAILED = "failed"
    """It failed and the job failed with it (no attempts left, or an error not worth retrying)."""
    RETRYING = "retrying"
    """It failed; the job waits for another attempt."""
    TIMED_OUT = "timed_out"
    """It was stopped at the job's time limit; the job failed with `timeout`."""
    CANCELLED = "cancelled"
    """A client cancelled the job."""
    INTERRUPTED = "interrupted"
    """Cut short, not by the job: by a graceful shutdown (no error; the attempt is given back),
    or by the process running it dying or going silent before it could record how the attempt
    ended (error `crashed`). The job runs again."""
    CRASHED = "crashed"
    """As `interrupted` by a dead process, when the job had no attempts left: it failed with
    `crashed`."""


# What a move out of `running` means for the open attempt, when its caller does not say.
OUTCOME_OF = {
    JobStatus.SUCCEEDED: AttemptOutcome.SUCCEEDED,
    JobStatus.FAILED: AttemptOutcome.FAILED,
    JobStatus.CANCELLED: AttemptOutcome.CANCELLED,
    JobStatus.QUEUED: AttemptOutcome.INTERRUPTED,
}


AttemptError = tuple[str | None, str | None]  # (code, message), or (None, None)

# The error of an attempt whose process died, or went silent, before it could say how it ended.
PROCESS_DIED: AttemptError = (
    "crashed",
    "The process running this attempt stopped before it ended.",
)


def error_in(values: Mapping[str, Any]) -> AttemptError:
    """The error that `values` (columns of a job's row) give the job."""
    return values.get("error_code"), values.get("error_message")


class JobAttempt(Base):
    __tablename__ = "job_attempts"

    # The primary key's first column serves the job's reads and the cascade of its delete.
    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: running
    outcome: Mapped[AttemptOutcome | None] = mapped_column(_enum_column(AttemptOutcome))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The process that ran it ("host:pid"), for operators; the API does not show it.
    worker: Mapped[str | None] = mapped_column(String(255))


_OF_JOB = (
    select(JobAttempt).where(JobAttempt.job_id == bindparam("job_id")).order_by(JobAttempt.number)
)


class AttemptRepository:
    """Reads of `job_attempts` (its writes go with the job's: see `JobRepository`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of_job(self, job_id: str) -> Sequence[JobAttempt]:
        """Any owner's job's attempts, first first."""
        return (await self.session.scalars(_OF_JOB, {"job_id": job_id})).all()


async def attempts_of(jobs: JobService, job_id: str, owner_id: str | None) -> Sequence[JobAttempt]:
    """`owner_id`'s job's attempts, first first; `JobNotFound` for anyone else's job, as its
    poll answers (the poll's read decides, so the two can never disagree)."""
    await jobs.poll(job_id, owner_id)
    async with jobs.db.read() as session:
        return await AttemptRepository(session).of_job(job_id)
