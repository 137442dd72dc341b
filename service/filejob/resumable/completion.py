"""The end of a request's bytes into an upload (writing.py): the last byte completes it. A
partial upload then waits for its final upload; any other becomes its job, in the transaction
that completes it, its lease kept alive (heartbeat.py) while its bytes are made whole (store.py:
`finished`), hashed and stored."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.errors import DigestMismatch
from filejob.jobs.admission import JobRequest
from filejob.jobs.model import Job, utcnow
from filejob.resumable.errors import UploadLocked
from filejob.resumable.files import FinishedFile
from filejob.resumable.heartbeat import kept_alive
from filejob.resumable.leases import Lease
from filejob.resumable.model import ResumableUpload, UploadState
from filejob.resumable.repository import UploadRepository

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.service import ResumableUploads
    from filejob.resumable.store import FinishedBytes

log = logging.getLogger(__name__)
_REQUEST_FIELDS = frozenset(field.name for field in dataclasses.fields(JobRequest))


def retry_soon() -> dict[str, str]:
    return {"Retry-After": "1"}


def lost(what: str) -> UploadLocked:
    """The error of a request whose lease another request took over (it had stalled)."""
    return UploadLocked(
        f"Another request took this upload over; {what} (HEAD tells the offset).",
        headers=retry_soon(),
    )


def job_request_of(upload: ResumableUpload) -> JobRequest:
    """The job the upload asked for at its creation (fields this version does not know, from
    rows an older one wrote, are dropped)."""
    return JobRequest(**{k: v for k, v in upload.job_request.items() if k in _REQUEST_FIELDS})


def as_written(upload: ResumableUpload, **changes: object) -> ResumableUpload:
    """`upload` (a detached snapshot) as it is after a write this process made."""
    for name, value in changes.items():
        setattr(upload, name, value)
    return upload


async def finish_partial(
    uploads: ResumableUploads, lease: Lease, upload: ResumableUpload, offset: int
) -> ResumableUpload:
    """A partial upload's last byte: complete, no job; it waits for its final upload."""
    async with uploads.db.write() as session:
        done = await UploadRepository(session).complete_partial(
            upload.id, lease.token, offset, utcnow()
        )
    if not done:
        raise lost("this request's bytes were not kept")
    uploads.hashes.forget(upload.id)
    return as_written(upload, state=UploadState.COMPLETE, received=upload.length)


async def finish(
    uploads: ResumableUploads,
    lease: Lease,
    upload: ResumableUpload,
    offset: int,
    caller: Principal,
    running: _Hash | None,
) -> ResumableUpload:
    """The last byte landed: the job is made, and the upload completed, in one transaction;
    the upload's bytes become the job's input (a link, or a server-side copy, where storage
    can; else a copy). No body keeps the lease alive meanwhile: a heartbeat does."""
    assert upload.length is not None
    length, keep_until = upload.length, utcnow() + uploads.ttl
    async with kept_alive(uploads.db, [upload.id], lease.token):
        job, finished = await _make_job(uploads, lease, upload, offset, caller, running, keep_until)
    uploads.hashes.forget(upload.id)
    # The job's input has the bytes now: the upload's own copy goes. A crash before this
    # line leaves it to the sweeps.
    await finished.kept(job.input_key)
    await uploads.jobs.executor.schedule(job.id)
    return as_written(
        upload,
        state=UploadState.COMPLETE,
        received=length,
        job_id=job.id,
        expires_at=keep_until,
    )


async def _make_job(
    uploads: ResumableUploads,
    lease: Lease,
    upload: ResumableUpload,
    offset: int,
    caller: Principal,
    running: _Hash | None,
    keep_until: datetime,
) -> tuple[Job, FinishedBytes]:
    """The upload's job, committed with the upload's completion (see `finish`); a job not
    made leaves the upload at `offset`, but for a wrong digest, which no retry can mend."""
    finished = await uploads.files.finished(upload, offset, running)
    incoming = FinishedFile(finished.spool, upload.filename, upload.content_type)

    async def complete(session: AsyncSession, job: Job) -> None:
        repo = UploadRepository(session)
        if not await repo.complete(upload.id, lease.token, offset, job.id, utcnow(), keep_until):
            raise lost("this request's bytes were not kept")

    try:
        with spared(uploads, finished):
            job = await uploads.jobs.accept_completing(
                incoming, job_request_of(upload), caller, complete
            )
    except DigestMismatch:
        # Every byte is there and none can be taken back: a retry could only fail the same
        # way. The upload goes (HEAD: 404), so its client starts over and its quota is free.
        await asyncio.shield(_discard(uploads, lease, finished))
        raise
    except Exception:
        await asyncio.shield(finished.restore())
        raise
    finally:
        await incoming.release()
    return job, finished


@contextlib.contextmanager
def spared(uploads: ResumableUploads, finished: FinishedBytes) -> Iterator[None]:
    """While a job is made of it, a finished upload that is a blob already is one the orphan
    sweep of this process leaves alone (as an input being stored is)."""
    if finished.key is None:
        yield
        return
    uploads.jobs.storing.add(finished.key)
    try:
        yield
    finally:
        uploads.jobs.storing.discard(finished.key)


async def _discard(uploads: ResumableUploads, lease: Lease, finished: FinishedBytes) -> None:
    try:
        async with uploads.db.write() as session:
            removed = await UploadRepository(session).discard(lease.upload_id, lease.token)
    except Exception:  # it stays, to expire as any other
        log.warning("upload %s: could not remove it", lease.upload_id, exc_info=True)
        removed = False
    if not removed:
        await finished.restore()
        return
    uploads.hashes.forget(lease.upload_id)
    await finished.discard()
