"""Downloads of a job's results, one by one or all at once (a zip), and delete-after-download
counted per job: its files go once every result was sent whole, by whichever downloads.

Who may read a job is decided as for its poll (the poll's read: an owner id, None for the
anonymous owner, or `ANY_OWNER` for the holder of a verified signed link), so the two can
never disagree; a job that is not succeeded answers as `/result` does (`JobService.no_result`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from filejob.errors import JobNotFound, ResultNotFound
from filejob.jobs.model import Job, JobResult
from filejob.jobs.repository import PollOwner
from filejob.jobs.result_rows import ResultRows
from filejob.jobs.states import JobStatus
from filejob.storage.base import BlobNotFound, BlobReader

if TYPE_CHECKING:
    from filejob.jobs.service import JobService


@dataclass(frozen=True)
class OpenedResult:
    """One result of a succeeded job, opened: the reader keeps working even if the file is
    deleted while it is being sent."""

    job: Job  # a detached, read-only copy of the row (the poll's read)
    result: JobResult
    reader: BlobReader


class ResultFiles:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs

    async def job(self, job_id: str, owner: PollOwner) -> Job:
        """The job, if `owner` may read it and it has results to download (its `results`
        list them); else what `/result` would answer."""
        row = await self.jobs.poll_reads.row(job_id, owner)
        if row is None:
            raise JobNotFound(f"No job {job_id!r}.")
        job = Job(**row)
        if job.status is not JobStatus.SUCCEEDED or not job.result_key:
            raise self.jobs.no_result(job)
        return job

    async def open(self, job_id: str, result_id: str, owner: PollOwner) -> OpenedResult:
        """One of the job's results, opened for download."""
        job = await self.job(job_id, owner)
        async with self.jobs.db.read() as session:
            result = await ResultRows(session).get(job.id, result_id)
        if result is None:
            raise ResultNotFound(f"Job {job_id} has no result {result_id!r}.")
        if result.key is None:
            raise await self._gone(job)  # removed since the job was read
        try:
            reader = await self.jobs.storage.open(result.key or "")
        except BlobNotFound:
            raise await self._gone(job) from None
        return OpenedResult(job, result, reader)

    async def stored(self, job: Job) -> Sequence[JobResult]:
        """The job's results that are still stored, in order."""
        async with self.jobs.db.read() as session:
            results = await ResultRows(session).of_job(job.id)
        return [result for result in results if result.key]

    async def sent_whole(self, job_id: str, result_ids: Sequence[str]) -> None:
        """A download of each of `result_ids` went out whole: for a job that asked for
        delete-after-download, its files go once that is true of every one of its results
        (a job with one result: at once, as always)."""
        async with self.jobs.db.write() as session:
            remaining = await ResultRows(session).mark_downloaded(job_id, result_ids)
        if remaining == 0:
            await self.jobs.expire(job_id)

    async def _gone(self, job: Job) -> Exception:
        """Why a result read a moment ago cannot be opened (expired or deleted meanwhile)."""
        try:
            current = await self.jobs.get_any(job.id)
        except JobNotFound as missing:
            return missing
        return self.jobs.no_result(current)


def first_result_id(job: Job) -> str | None:
    """The id of the result the job's result_* columns describe (`/result`'s)."""
    results: list[dict[str, Any]] = job.results or []
    return str(results[0]["id"]) if results else None
