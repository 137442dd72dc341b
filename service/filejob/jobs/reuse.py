"""Reuse by content (`reuse=true`, opt-in per job): a new job asking for what an earlier job
of the same owner already made (the same processor, the same params as validated, so defaults
and key order do not matter, and an input with the same sha256), while that job is succeeded
and unexpired, succeeds at once with a copy of its result instead of running.

The copy is the storage's own (`Storage.copy`: a second name of the same bytes on local
storage, a server-side copy on S3), so the new job's result is a blob of its own: retention,
delete-after-download or a delete of either job removes its own, never the other's. If the
earlier result goes before it is copied (it expired, or was downloaded and deleted), the new
job runs as any other.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from filejob.db.engine import Database
from filejob.jobs.model import Job, utcnow
from filejob.jobs.repository import owned_by
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

    async def apply(self, job: Job) -> str | None:
        """Make the new, not yet committed `job` succeeded with a copy of an earlier job's
        result; the copy's key (for the caller to remove if the row is not committed), or
        None when there is nothing to reuse and `job` stays queued."""
        earlier = await self.earlier(job)
        if earlier is None or earlier.result_key is None:
            return None
        key = result_key(job.id, 0)  # attempt 0: the job never ran
        try:
            await self.storage.copy(earlier.result_key, key, earlier.result_size or 0)
        except BlobNotFound:  # expired or deleted since it was read: run as any other job
            return None
        now = utcnow()
        job.status = JobStatus.SUCCEEDED
        job.progress = 1.0
        job.started_at = job.finished_at = now
        job.result_key = key
        job.result_filename = earlier.result_filename
        job.result_content_type = earlier.result_content_type
        job.result_size = earlier.result_size
        job.result_sha256 = earlier.result_sha256
        if job.callback_url:
            job.callback_state, job.callback_next_at = CallbackState.PENDING, now
        log.info("job %s reuses the result of job %s", job.id, earlier.id)
        return key
