"""Reuse by content (`reuse=true`, opt-in per job): a new job asking for what an earlier job
of the same owner already made (the same processor, the same params as validated, so defaults
and key order do not matter, and an input with the same sha256), while that job is succeeded
and unexpired, succeeds at once with a copy of its results (every one) instead of running.

Each copy is the storage's own (`Storage.copy`: a second name of the same bytes on local
storage, a server-side copy on S3), so the new job's results are blobs of its own: retention,
delete-after-download or a delete of either job removes its own, never the other's. If an
earlier result goes before it is copied (it expired, or was downloaded and deleted), the new
job runs as any other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from filejob.db.engine import Database
from filejob.jobs.model import Job, JobResult, utcnow
from filejob.jobs.repository import owned_by
from filejob.jobs.result_rows import ResultRows, StoredOutput, listing, new_rows
from filejob.jobs.states import CallbackState, JobStatus
from filejob.jobs.storage_keys import result_key
from filejob.storage.base import BlobNotFound, Storage

log = logging.getLogger("filejob")

# Earlier jobs on the same input looked at, newest first: they differ only by params.
CANDIDATES = 20


class ResultReuse:
    def __init__(self, db: Database, storage: Storage) -> None:
        self.db = db
        self.storage = storage

    async def earlier(self, job: Job) -> Job | None:
        """The newest succeeded job of `job`'s owner that `job` would repeat, if any."""
        async with self.db.read() as session:
            candidates = await session.scalars(
                select(Job)
                .where(
                    owned_by(job.owner_id),
                    Job.input_sha256 == job.input_sha256,
                    Job.processor == job.processor,
                    Job.status == JobStatus.SUCCEEDED,
                    Job.result_key.is_not(None),
                )
                .order_by(Job.seq.desc())
                .limit(CANDIDATES)
            )
            return next((c for c in candidates if c.params == job.params), None)

    async def apply(self, job: Job) -> list[str] | None:
        """Make the new, not yet committed `job` succeeded with copies of an earlier job's
        results (their rows are inserted with its row: `JobRepository.add_all`); the copies'
        keys (for the caller to remove if the row is not committed), or None when there is
        nothing to reuse and `job` stays queued."""
        earlier = await self.earlier(job)
        if earlier is None:
            return None
        async with self.db.read() as session:
            results = await ResultRows(session).of_job(earlier.id)
        copies = await self._copy(job, results)
        if copies is None:
            return None
        rows = new_rows(job.id, copies)
        now = utcnow()
        job.status = JobStatus.SUCCEEDED
        job.progress = 1.0
        job.started_at = job.finished_at = now
        first = copies[0]
        job.result_key = first.key
        job.result_filename = first.filename
        job.result_content_type = first.content_type
        job.result_size = first.size
        job.result_sha256 = first.sha256
        job.results = listing(rows)
        if job.callback_url:
            job.callback_state, job.callback_next_at = CallbackState.PENDING, now
        log.info("job %s reuses the results of job %s", job.id, earlier.id)
        return [copy.key for copy in copies]

    async def _copy(self, job: Job, results: Sequence[JobResult]) -> list[StoredOutput] | None:
        """Each of `results` copied under `job`'s keys of attempt 0 (it never ran), by
        position; None, and no copy left, if one of them is gone (or none is stored)."""
        copies: list[StoredOutput] = []
        for position, result in enumerate(results):
            key = result_key(job.id, 0, position)
            try:
                if result.key is None:
                    raise BlobNotFound(result.id)
                await self.storage.copy(result.key, key, result.size)
            except BlobNotFound:  # expired or deleted since it was read: run as any other job
                for copy in copies:
                    await self.storage.delete(copy.key)
                return None
            copies.append(
                StoredOutput(key, result.filename, result.content_type, result.size, result.sha256)
            )
        return copies or None
