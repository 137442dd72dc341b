"""Job use cases. Each method is one unit of work with its own transaction(s)."""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.db.engine import Database
from filejob.errors import (
    DigestMismatch,
    InsufficientStorage,
    InvalidCursor,
    JobFailed,
    JobFinal,
    JobNotFound,
    ResultGone,
    ResultNotReady,
    ServiceUnavailable,
)
from filejob.jobs.admission import Admission, JobRequest, within_quota
from filejob.jobs.commits import JobInserts, record_if_queued
from filejob.jobs.executors.base import Executor
from filejob.jobs.idempotency import Claim, IdempotencyKeys, fingerprint
from filejob.jobs.imports import pending_input
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job, utcnow
from filejob.jobs.poll_reads import EngineReads, PollReads
from filejob.jobs.repository import ANY_OWNER, JobRepository
from filejob.jobs.reuse import ResultReuse
from filejob.jobs.states import JobStatus
from filejob.jobs.storage_keys import input_key
from filejob.processors.base import Processor
from filejob.storage.base import BlobNotFound, BlobReader, Storage
from filejob.storage.ingest import digest_of, store_file
from filejob.untrusted.boundary import BEYOND_ANY_SIZE, parse_count

log = logging.getLogger(__name__)


def new_job_id() -> str:
    """128 random bits, URL-safe, 22 characters; never starting with "-", which command
    lines would take for an option."""
    while (job_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return job_id


def encode_cursor(seq: int) -> str:
    return f"s{seq}"


def decode_cursor(cursor: str) -> int:
    seq = parse_count(cursor[1:]) if cursor.startswith("s") else None
    if seq is None or seq >= BEYOND_ANY_SIZE:  # a 64-bit column holds no more
        raise InvalidCursor("The cursor is not one this server issued.")
    return seq


class JobService:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        executor: Executor,
        admission: Admission,
        *,
        max_attempts: int = 3,
        max_job_seconds: float = 3600.0,
        poll_reads: PollReads | None = None,
    ) -> None:
        self.db = db
        self.poll_reads = poll_reads or EngineReads(db)
        self.storage = storage
        self.executor = executor
        self.admission = admission
        self.max_attempts = max_attempts
        self.max_job_seconds = max_job_seconds
        # Inputs stored but whose rows may not be committed yet, for the orphan sweep.
        self.storing: set[str] = set()
        self.inserts = JobInserts(db, executor, admission.reserved)
        self.idempotency = IdempotencyKeys(db)
        self.reuse = ResultReuse(db, storage)

    # -- accept ---------------------------------------------------------------------------

    async def accept(
        self,
        upload: IncomingFile,
        request: JobRequest,
        caller: Principal,
        *,
        claim: Claim | None = None,
    ) -> Job:
        """Validate, store the input, commit the row: after this returns the job is safe.

        With `claim` (an Idempotency-Key, see jobs/idempotency.py), the key is completed in the
        job's transaction; if an earlier request completed it, that request's job is returned
        instead (`claim.replayed`), nothing is made, and the upload is left to the caller."""
        if claim is not None or request.input_sha256:
            await self._check_digest(upload, request, claim)
            if claim is not None and not claim.owned:
                return await self.idempotency.replay(claim, caller.owner_id)
        job = await self._new_job(upload, request, caller)
        self.storing.add(input_key(job.id))
        reused: str | None = None
        try:
            reused = await self._reused(job, request)
            await self._store_and_add(job, upload, caller, claim)
        except asyncio.CancelledError:
            raise  # the row may commit all the same: the orphan sweep judges the copy
        except BaseException:
            if reused is not None:
                await self.storage.delete(reused)
            raise
        finally:
            self.storing.discard(input_key(job.id))
            if reused is not None:
                self.storing.discard(reused)
        await upload.seek(0)
        return job

    async def _reused(self, job: Job, request: JobRequest) -> str | None:
        """With `reuse`, `job` made succeeded with an earlier job's result (jobs/reuse.py):
        the copy's key, kept from the orphan sweep until the row commits (`storing`)."""
        if not request.reuse:
            return None
        key = await self.reuse.apply(job)
        if key is not None:
            self.storing.add(key)
        return key

    async def _new_job(self, upload: IncomingFile, request: JobRequest, caller: Principal) -> Job:
        """The queued job `request` asks for on `upload`, once admitted (not stored yet):
        `accept`'s and `accept_completing`'s alike."""
        processor, params = self.admission.processor_and_params(
            request.processor, request.params_json
        )
        callback_url = self.admission.callback(request.callback_url, caller)
        size, sha256, filename, content_type = await self.admission.input(upload, processor)
        job_id = new_job_id()
        return self._job(
            job_id,
            processor,
            params,
            request,
            caller,
            callback_url=callback_url,
            input_key=input_key(job_id),
            input_filename=filename,
            input_content_type=content_type,
            input_size=size,
            input_sha256=sha256,
        )

    def _job(
        self,
        job_id: str,
        processor: Processor,
        params: dict[str, Any],
        request: JobRequest,
        caller: Principal,
        **columns: Any,
    ) -> Job:
        """A new, queued job's row: what every new job has, and its own `columns`."""
        now = utcnow()
        return Job(
            id=job_id,
            status=JobStatus.QUEUED,
            processor=processor.name,
            params=params,
            progress=0.0,
            attempts=0,
            max_attempts=min(request.max_attempts or self.max_attempts, self.max_attempts),
            timeout_seconds=min(request.timeout_seconds or processor.timeout, self.max_job_seconds),
            delete_after_download=request.delete_after_download,
            owner_id=caller.owner_id,
            callback_attempts=0,
            created_at=now,
            updated_at=now,
            **columns,
        )

    async def accept_import(
        self, request: JobRequest, caller: Principal, *, claim: Claim | None = None
    ) -> Job:
        """As `accept`, for an import: the job fetches its input from `request.source_url`
        in its first attempt (jobs/fetching.py). The URL is judged, the job admitted and its
        row committed with no input yet (`input_key` None; the name the URL suggests, the
        sha256 the client sent, size 0), the owner's storage quota recorded to bound the
        fetch. The caller schedules it. With `claim`, as `accept`: a repeat of the request
        that completed the key gets that request's job."""
        assert request.source_url is not None
        source_url = self.admission.source(request.source_url)
        expected = (request.input_sha256 or "").lower()
        if claim is not None:
            # The input's identity, where an upload's is its sha256: the URL (and the digest
            # its bytes must have).
            claim.fingerprint = fingerprint(request, f"source_url {source_url} {expected}")
            if not claim.owned:
                return await self.idempotency.replay(claim, caller.owner_id)
        processor, params = self.admission.processor_and_params(
            request.processor, request.params_json
        )
        callback_url = self.admission.callback(request.callback_url, caller)
        job = self._job(
            new_job_id(),
            processor,
            params,
            request,
            caller,
            callback_url=callback_url,
            owner_quota_bytes=caller.max_storage_bytes,
            **pending_input(source_url, expected, self.admission.max_filename_bytes),
        )
        await self.inserts.add(job, caller, claim)
        return job

    async def _store_input(self, upload: IncomingFile, key: str) -> None:
        try:
            await store_file(self.storage, upload.file, key)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage("No space left to store the upload.") from exc
            raise

    async def _check_digest(
        self, upload: IncomingFile, request: JobRequest, claim: Claim | None
    ) -> None:
        """Refuse an input whose sha256 is not the one the client sent; give `claim` this
        request's fingerprint. (Free for a spooled upload: hashed as it arrived.)"""
        _, sha256 = await digest_of(upload.file)
        if request.input_sha256 and request.input_sha256.lower() != sha256:
            raise DigestMismatch(
                f"The upload's sha-256 is {sha256}, not the {request.input_sha256.lower()} "
                "that was sent with it: it changed on the way. Nothing was kept."
            )
        if claim is not None:
            claim.fingerprint = fingerprint(request, sha256)

    async def _store_and_add(
        self, job: Job, upload: IncomingFile, caller: Principal, claim: Claim | None = None
    ) -> None:
        """The input first, then the row (with its queue entry, after the caller's limits, in
        a group commit with concurrent submits: see jobs/commits.py); the input goes if the
        row is not committed, so a failure leaves nothing behind."""
        key = input_key(job.id)
        await self._store_input(upload, key)
        try:
            await self.inserts.add(job, caller, claim)
        except asyncio.CancelledError:
            # Its group may commit the row all the same: the input stays. If the row never
            # comes, the orphan sweep removes the input.
            raise
        except BaseException:
            await self.storage.delete(key)
            raise

    # -- read -------------------------------------------------------------------------------

    async def get(self, job_id: str, owner_id: str | None) -> Job:
        """`owner_id`'s job; anyone else's answers exactly like a missing one."""
        async with self.db.read() as session:
            job = await JobRepository(session).get_owned(job_id, owner_id)
        if job is None:
            raise JobNotFound(f"No job {job_id!r}.")
        return job

    async def poll(self, job_id: str, owner_id: str | None) -> dict[str, Any]:
        """As `get`, as `repository.POLL_COLUMNS` by name (the poll's cheap read)."""
        row = await self.poll_reads.row(job_id, owner_id)
        if row is None:
            raise JobNotFound(f"No job {job_id!r}.")
        return row

    async def _get_any(self, job_id: str) -> Job:
        async with self.db.read() as session:
            job = await JobRepository(session).get(job_id)
        if job is None:
            raise JobNotFound(f"No job {job_id!r}.")
        return job

    async def list(
        self,
        *,
        owner_id: str | None,
        limit: int,
        cursor: str | None,
        status: JobStatus | None,
        processor: str | None,
    ) -> tuple[Sequence[Job], str | None]:
        before = decode_cursor(cursor) if cursor else None
        async with self.db.read() as session:
            # One extra row tells whether another page exists without a COUNT.
            jobs = await JobRepository(session).list(
                owner_id=owner_id,
                limit=limit + 1,
                before_seq=before,
                status=status,
                processor=processor,
            )
        if len(jobs) > limit:
            return jobs[:limit], encode_cursor(jobs[limit - 1].seq)
        return jobs, None

    # -- results --------------------------------------------------------------------------

    async def result_job(self, job_id: str, owner_id: str | None) -> Job:
        """`owner_id`'s job, if it has a result to download (for issuing links)."""
        job = await self.get(job_id, owner_id)
        if job.status is JobStatus.SUCCEEDED and job.result_key:
            return job
        raise self._no_result(job)

    async def open_result(self, job_id: str, owner_id: str | None) -> tuple[Job, BlobReader]:
        """`owner_id`'s finished job and its result, opened: the reader keeps working even if
        the result is deleted while it is being sent."""
        # The poll's read (no session, no identity map): a download is a request clients send
        # often too. The job it returns is a detached copy of the row, read-only.
        return await self._open_result(Job(**await self.poll(job_id, owner_id)))

    async def open_result_by_link(self, job_id: str) -> tuple[Job, BlobReader]:
        """As `open_result`, for the holder of a verified signed link (whoever that is)."""
        row = await self.poll_reads.row(job_id, ANY_OWNER)
        if row is None:
            raise JobNotFound(f"No job {job_id!r}.")
        return await self._open_result(Job(**row))

    async def _open_result(self, job: Job) -> tuple[Job, BlobReader]:
        if job.status is JobStatus.SUCCEEDED and job.result_key:
            try:
                return job, await self.storage.open(job.result_key)
            except BlobNotFound:
                job = await self._get_any(job.id)  # expired or deleted meanwhile: say which
        raise self._no_result(job)

    @staticmethod
    def _no_result(job: Job) -> Exception:
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            return ResultNotReady(
                f"Job {job.id} is {job.status.value}.",
                job_status=job.status.value,
                headers={"Retry-After": "1"},
            )
        if job.status is JobStatus.FAILED:
            return JobFailed(
                job.error_message or "The job failed.",
                job_status=job.status.value,
                error={"code": job.error_code, "message": job.error_message},
            )
        if job.status is JobStatus.CANCELLED:
            return ResultNotReady(
                f"Job {job.id} was cancelled; it has no result.", job_status=job.status.value
            )
        return ResultGone(f"The result of job {job.id} was removed.", job_status=job.status.value)

    async def expire(self, job_id: str) -> bool:
        """Remove a finished job's files, keeping its row as `expired`."""
        async with self.db.write() as session:
            repo = JobRepository(session)
            job = await repo.get(job_id)
            if job is None or job.status not in (
                JobStatus.SUCCEEDED,
                JobStatus.FAILED,
                JobStatus.CANCELLED,
            ):
                return False
            keys = [k for k in (job.input_key, job.result_key) if k]
            moved = await repo.expire(job)
        # Row first, files second: a crash in between leaves unreferenced files, which the
        # orphan sweep removes, never a row pointing at nothing.
        if moved:
            for key in keys:
                await self.storage.delete(key)
        return moved

    # -- cancel / delete ------------------------------------------------------------------

    async def cancel(self, job_id: str, owner_id: str | None) -> Job:
        """Cancel a queued or running job and return it, cancelled. A job that is final
        already (or finishes before it can be stopped) raises `JobFinal`, naming its status."""
        for _ in range(3):
            final = await self._stop_unless_final(job_id, owner_id)
            job = final or await self.get(job_id, owner_id)
            if final is None and job.status is JobStatus.CANCELLED:
                return job
            if job.status.is_final:
                raise JobFinal(
                    f"Job {job_id} already {job.status.value}; nothing to cancel.",
                    job_status=job.status.value,
                )
            # Stopped as a retry was being queued: the queued retry is cancelled next time.
        raise ServiceUnavailable(
            "The job kept changing state; try again.", headers={"Retry-After": "1"}
        )

    async def cancel_or_delete(self, job_id: str, owner_id: str | None) -> None:
        """Cancel a queued or running job; delete a finished one with its files."""
        job = await self._stop_unless_final(job_id, owner_id)
        if job is None:
            return
        async with self.db.write() as session:
            deleted = await JobRepository(session).delete(job_id)
        if deleted:
            for key in (job.input_key, job.result_key):
                if key:
                    await self.storage.delete(key)

    async def _stop_unless_final(self, job_id: str, owner_id: str | None) -> Job | None:
        """Cancel the job if it is queued or running (None once it has stopped: cancelled, or
        finished just before); a final job is returned as it is, untouched.

        The job may move while we decide (a worker claims it, a retry re-queues it), so each
        step is a compare-and-set and the decision is taken again when one loses."""
        for _ in range(10):
            job = await self.get(job_id, owner_id)
            if job.status is JobStatus.QUEUED:
                if await self._transition(job_id, JobStatus.CANCELLED, JobStatus.QUEUED):
                    return None
            elif job.status is JobStatus.RUNNING:
                if await self.executor.cancel(job_id):
                    return None  # it stopped: cancelled (or it finished just before)
                # Not running in this process (a stale row): settle it here.
                if await self._transition(job_id, JobStatus.CANCELLED, JobStatus.RUNNING):
                    return None
            else:
                return job
        raise ServiceUnavailable(
            "The job kept changing state; try again.", headers={"Retry-After": "1"}
        )

    async def usage(self, owner_id: str | None) -> tuple[int, int]:
        """The owner's active (queued or running) jobs and stored bytes, as admission counts
        them against the owner's limits."""
        async with self.db.read() as session:
            return await JobRepository(session).usage(owner_id)

    async def _transition(self, job_id: str, target: JobStatus, source: JobStatus) -> bool:
        async with self.db.write() as session:
            return await JobRepository(session).transition(job_id, target, expected=[source])

    # -- start-up -------------------------------------------------------------------------

    async def resume_unfinished(self) -> int:
        """Re-schedule the jobs a previous process left queued or running. Their inputs are
        intact (a 202 means stored). A `running` one was interrupted by the process dying and
        has counted that attempt; one that has used up its attempts that way is a poison input
        (it killed or hung the process each time) and fails with `crashed` instead of taking
        the server down again."""
        resumed: list[tuple[str, float]] = []
        now = utcnow()
        async with self.db.write() as session:
            repo = JobRepository(session)
            for job in await repo.unfinished():
                if job.status is JobStatus.RUNNING and not await repo.requeue_interrupted(job):
                    continue
                due = job.next_attempt_at
                resumed.append((job.id, (due - now).total_seconds() if due else 0.0))
        for job_id, delay in resumed:
            await self.executor.schedule(job_id, delay=max(0.0, delay))
        if resumed:
            log.info("resumed %d unfinished job(s)", len(resumed))
        return len(resumed)

    # -- accept, completing something else in the same transaction --------------------------

    async def accept_completing(
        self,
        upload: IncomingFile,
        request: JobRequest,
        caller: Principal,
        complete: Callable[[AsyncSession, Job], Awaitable[None]],
    ) -> Job:
        """As `accept`, for an input something else recorded (a resumable upload): the job's
        row is committed in one transaction with `complete(session, job)`, which may raise to
        refuse; both are committed, or neither, and then the stored input goes too. Not grouped
        with other submits (jobs/commits.py): the transaction is shared with `complete`.
        The caller schedules the job once this returns, and releases `upload`."""
        if request.input_sha256:
            await self._check_digest(upload, request, None)
        job = await self._new_job(upload, request, caller)
        key = input_key(job.id)
        self.storing.add(key)
        reused: str | None = None
        try:
            reused = await self._reused(job, request)
            await self._store_input(upload, key)
            try:
                async with self.db.write() as session:
                    repo = JobRepository(session)
                    if caller.max_active_jobs is not None or caller.max_storage_bytes is not None:
                        await repo.lock_owner(caller.owner_id)
                        within_quota(caller, *await repo.usage(caller.owner_id), job.input_size)
                    await complete(session, job)
                    await record_if_queued(self.executor, session, job)
                    await repo.add(job)
            except asyncio.CancelledError:
                raise  # the commit may have happened: the orphan sweep judges the input
            except BaseException:
                await self.storage.delete(key)
                if reused is not None:
                    await self.storage.delete(reused)
                raise
        finally:
            self.storing.discard(key)
            if reused is not None:
                self.storing.discard(reused)
        return job
