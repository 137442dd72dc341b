"""Concatenation (tus' `concatenation` extension): a client sends parts of a file as partial
uploads, in parallel, then creates the final upload from them, and that becomes the job.

The parts must be the caller's, finished and unexpired. They are leased for the time the final
upload is made (a concurrent final upload, or a DELETE, finds them taken: 423; heartbeat.py
renews the leases until the commit); their bytes are joined into the final upload's (store.py:
`concatenate`: a file copy on local storage, server-side part copies on S3), hashed on the
way; then, in one transaction, the job is made, the final upload recorded complete, and the
parts' rows deleted. A failure leaves the parts as they were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.jobs.admission import JobRequest
from filejob.jobs.idempotency import Claim, complete_upload
from filejob.jobs.model import Job, utcnow
from filejob.jobs.service import new_job_id
from filejob.resumable.completion import spared
from filejob.resumable.errors import InvalidConcat, PartialNotFinished, UploadLocked
from filejob.resumable.files import FinishedFile
from filejob.resumable.heartbeat import kept_alive
from filejob.resumable.leases import LEASE_SECONDS, new_token
from filejob.resumable.model import ResumableUpload, UploadState, answerable
from filejob.resumable.repository import UploadRepository

if TYPE_CHECKING:
    from filejob.resumable.service import ResumableUploads
    from filejob.resumable.store import FinishedBytes

log = logging.getLogger(__name__)

MAX_PARTS = 100


async def concatenate(
    uploads: ResumableUploads,
    caller: Principal,
    part_ids: list[str],
    request: JobRequest,
    *,
    filename: str | None,
    content_type: str | None,
    metadata: str | None,
    claim: Claim | None = None,
) -> ResumableUpload:
    """The final upload made of `part_ids`, complete, with its job; `claim` (an
    Idempotency-Key) completed with its row."""
    if not part_ids or len(part_ids) > MAX_PARTS or len(set(part_ids)) != len(part_ids):
        raise InvalidConcat(f"A final upload names 1 to {MAX_PARTS} distinct partial uploads.")
    uploads.check_job(request, caller)
    parts = await _finished_parts(uploads, caller, part_ids)
    length = sum(size for _, size in parts)
    uploads.check_length(length)
    now, token = utcnow(), new_token()
    async with uploads.db.write() as session:
        until = now + timedelta(seconds=LEASE_SECONDS)
        if not await UploadRepository(session).lease_parts(
            part_ids, caller.owner_id, token, now, until
        ):
            raise UploadLocked(
                "A partial upload is in use by another request; retry once it ends.",
                headers={"Retry-After": "1"},
            )
    final = ResumableUpload.created(
        new_job_id(),
        caller.owner_id,
        dataclasses.asdict(request),
        filename,
        content_type,
        metadata,
        now=now,
        expires_at=now + uploads.ttl,
        state=UploadState.COMPLETE,
        received=length,
        length=length,
        concat="final",
        parts=part_ids,
    )
    try:
        # Copying the parts can outlast their lease: renewed until the commit, a part cannot
        # be taken, deleted or swept meanwhile.
        async with kept_alive(uploads.db, part_ids, token):
            job, finished = await _make_job(uploads, caller, final, parts, request, token, claim)
    except BaseException:
        await asyncio.shield(_release(uploads, part_ids, token))
        raise
    await finished.kept(job.input_key)  # the job's input has the bytes: the copies go
    for part_id in part_ids:
        uploads.hashes.forget(part_id)
        await anyio.to_thread.run_sync(uploads.files.remove, part_id)
    await uploads.jobs.executor.schedule(job.id)
    return final


async def _finished_parts(
    uploads: ResumableUploads, caller: Principal, part_ids: list[str]
) -> list[tuple[str, int]]:
    """Each part's id and length; refused unless each is the caller's finished partial
    upload."""
    now, parts = utcnow(), []
    async with uploads.db.read() as session:
        repo = UploadRepository(session)
        for part_id in part_ids:
            part = answerable(await repo.get_owned(part_id, caller.owner_id), part_id, now)
            if part.concat != "partial":
                raise InvalidConcat(f"Upload {part_id} is not a partial upload.")
            if part.state is not UploadState.COMPLETE or part.length is None:
                raise PartialNotFinished(
                    f"Partial upload {part_id} has {part.received} of its bytes, not all."
                )
            parts.append((part_id, part.length))
    return parts


async def _make_job(
    uploads: ResumableUploads,
    caller: Principal,
    final: ResumableUpload,
    parts: list[tuple[str, int]],
    request: JobRequest,
    token: str,
    claim: Claim | None,
) -> tuple[Job, FinishedBytes]:
    finished = await uploads.files.concatenate(final.id, parts)
    incoming = FinishedFile(finished.spool, final.filename, final.content_type)
    part_ids = [part_id for part_id, _ in parts]

    async def complete(session: AsyncSession, job: Job) -> None:
        repo = UploadRepository(session)
        if not await repo.consume_parts(part_ids, token):
            raise UploadLocked("A partial upload was taken by another request.")
        final.job_id = job.id
        await repo.add(final)
        if claim is not None:
            await complete_upload(session, claim, final.id)
        session.expunge(final)

    try:
        with spared(uploads, finished):
            job = await uploads.jobs.accept_completing(incoming, request, caller, complete)
    except Exception:
        await asyncio.shield(finished.restore())  # the parts stay as they were
        raise
    finally:
        await incoming.release()
    return job, finished


async def _release(uploads: ResumableUploads, part_ids: list[str], token: str) -> None:
    try:
        async with uploads.db.write() as session:
            await UploadRepository(session).release_parts(part_ids, token)
    except Exception:  # their leases run out by themselves
        log.warning("could not release the leases of partial uploads", exc_info=True)
