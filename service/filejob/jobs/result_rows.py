"""Every query against `job_results` (jobs/model.py), and the list of a job's results as the API
shows it. Callers own the transaction, as with `JobRepository`.

A job's results are named in the write that settles it (`JobRepository.succeed`): their rows,
and the same list on the job's row (`Job.results`), which is what polls read. The rows hold
what polls do not need: each file's storage key (None once removed), and whether a download of
it was sent whole.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.jobs.model import Job, JobResult
from filejob.jobs.storage_keys import result_key

# The fields of each entry of `Job.results` (and of the API's `results`, which adds the URL).
LISTED = ("id", "step", "filename", "content_type", "size", "sha256")


def new_result_id() -> str:
    """72 random bits, URL-safe, 12 characters, never starting with "-"."""
    while (result_id := secrets.token_urlsafe(9)).startswith("-"):
        pass
    return result_id


@dataclass(frozen=True)
class StoredOutput:
    """An output of an attempt, stored under `key`, not yet named by its job's row; its
    `filename` already cleaned (`sanitize_filename`)."""

    key: str
    filename: str
    content_type: str
    size: int
    sha256: str


def new_rows(
    job_id: str, outputs: Sequence[StoredOutput], step: str | None = None
) -> list[JobResult]:
    """The `job_results` rows naming `outputs`, in order, each with a new id."""
    return [
        JobResult(
            id=new_result_id(),
            job_id=job_id,
            position=position,
            step=step,
            filename=output.filename,
            content_type=output.content_type,
            size=output.size,
            sha256=output.sha256,
            key=output.key,
            downloaded=False,
        )
        for position, output in enumerate(outputs)
    ]


def copied_rows(job: Job) -> list[JobResult]:
    """The rows of a job inserted succeeded already, with copies of another job's results
    (jobs/reuse.py): `job.results` lists them, stored under the keys of its attempt (0) by
    position."""
    return [
        JobResult(
            **entry,
            job_id=job.id,
            position=position,
            key=result_key(job.id, job.attempts, position),
            downloaded=False,
        )
        for position, entry in enumerate(job.results or ())
    ]


def listing(rows: Iterable[JobResult]) -> list[dict[str, Any]]:
    """`Job.results`: the rows as the API lists them, in order."""
    return [{name: getattr(row, name) for name in LISTED} for row in rows]


_INSERT = insert(JobResult)
_COLUMNS = tuple(column.name for column in JobResult.__table__.columns)
_OF_JOB = (
    select(JobResult).where(JobResult.job_id == bindparam("job_id")).order_by(JobResult.position)
)
_KEYED = JobResult.key.is_not(None)


def stored_bytes_of(jobs: ColumnElement[bool]) -> Any:
    """The bytes the stored results of the jobs matching `jobs` take: a scalar subquery of
    its own, not correlated with a query of `jobs` it is put in."""
    return (
        select(func.coalesce(func.sum(JobResult.size), 0))
        .join(Job, Job.id == JobResult.job_id)
        .where(jobs, _KEYED)
        .correlate(None)
        .scalar_subquery()
    )


class ResultRows:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, rows: Sequence[JobResult]) -> None:
        """Insert new rows as they are, in one statement (as `JobRepository.add_all`)."""
        if rows:
            values = [{name: getattr(row, name) for name in _COLUMNS} for row in rows]
            connection = await self.session.connection()
            await connection.execute(_INSERT, values)

    async def replace(self, job_id: str, rows: Sequence[JobResult]) -> None:
        """The job's results are `rows` from now on. A job succeeds once, so there are
        normally none to replace; rows left by an earlier success (a row put back to running
        by hand, a restored backup) must not stop this one: their files, no longer named,
        go with the orphan sweep."""
        await self.session.execute(delete(JobResult).where(JobResult.job_id == job_id))
        await self.add(rows)

    async def of_job(self, job_id: str) -> Sequence[JobResult]:
        """The job's results, in order (removed ones too: their `key` is None)."""
        return (await self.session.scalars(_OF_JOB, {"job_id": job_id})).all()

    async def get(self, job_id: str, result_id: str) -> JobResult | None:
        """One of the job's results (a removed one too: its `key` is None)."""
        query = select(JobResult).where(JobResult.job_id == job_id, JobResult.id == result_id)
        return await self.session.scalar(query)

    async def keys_of(self, job_id: str) -> list[str]:
        """The storage keys of the job's results that are still stored."""
        query = select(JobResult.key).where(JobResult.job_id == job_id, _KEYED)
        return [key for key in (await self.session.scalars(query)) if key]

    async def forget_keys(self, job_id: str) -> None:
        """Name none of the job's result files any more (the caller deletes them)."""
        await self.session.execute(
            update(JobResult).where(JobResult.job_id == job_id).values(key=None)
        )

    async def mark_downloaded(self, job_id: str, result_ids: Sequence[str]) -> int:
        """Record that a download of each of `result_ids` was sent whole; how many of the
        job's stored results have not been so far."""
        await self.session.execute(
            update(JobResult)
            .where(JobResult.job_id == job_id, JobResult.id.in_(result_ids))
            .values(downloaded=True)
        )
        query = select(func.count()).where(
            JobResult.job_id == job_id, _KEYED, JobResult.downloaded.is_(False)
        )
        return int(await self.session.scalar(query) or 0)

    async def keys_for(self, job_ids: Iterable[str]) -> set[str]:
        """The stored result keys of these jobs (for the orphan sweep)."""
        query = select(JobResult.key).where(JobResult.job_id.in_(set(job_ids)), _KEYED)
        return {key for key in await self.session.scalars(query) if key}
