"""One request's bytes into an upload (PATCH, or the body of a creation): claim the upload's
lease at the request's offset, receive the body into the file, make it durable, then either
acknowledge the new offset or, with the last byte, complete the upload: a partial one waits for
its final upload, any other becomes its job in the transaction that completes it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.jobs.admission import JobRequest
from filejob.jobs.model import Job, utcnow
from filejob.resumable.digests import Checksum
from filejob.resumable.errors import (
    InvalidUploadLength,
    OffsetMismatch,
    UploadIsFinal,
    UploadLengthExceeded,
    UploadLocked,
)
from filejob.resumable.files import FinishedFile, finished_spool
from filejob.resumable.leases import LEASE_SECONDS, Lease, holder_is_dead, new_token
from filejob.resumable.model import ResumableUpload, UploadState, answerable
from filejob.resumable.receive import BodyReceiver
from filejob.resumable.repository import UploadRepository

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.service import ResumableUploads

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


def _with(upload: ResumableUpload, **changes: object) -> ResumableUpload:
    """`upload` (a detached snapshot) as it is after a write this process made."""
    for name, value in changes.items():
        setattr(upload, name, value)
    return upload


@dataclass
class LocalWriter:
    """A request of this process writing an upload. While it waits for its client's next
    bytes it can be interrupted by a newer request for the same upload: the client has most
    likely given up on it (a cut the server has not noticed yet) and come back, as tusd lets
    it. Its unacknowledged bytes are dropped; the newer request starts from the offset."""

    task: asyncio.Task[object] | None
    receiver: BodyReceiver | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def interrupt(self) -> bool:
        """Interrupt it if it is waiting for its client; True if it was."""
        if self.task is None or self.receiver is None or not self.receiver.waiting:
            return False
        self.receiver.interrupted = True
        self.task.cancel()  # delivered where it waits: in the body's next chunk
        return True


class _HeldHere(UploadLocked):
    """Locked by a request of this very process (`holder`)."""

    def __init__(self, detail: str, holder: LocalWriter) -> None:
        super().__init__(detail, headers=retry_soon())
        self.holder = holder


INTERRUPT_WAIT = 5.0  # seconds a request waits for the one it interrupted to let go


async def write(
    uploads: ResumableUploads,
    upload_id: str,
    caller: Principal,
    offset: int,
    body: AsyncIterable[bytes],
    *,
    content_length: int | None = None,
    length: int | None = None,
    checksum: Checksum | None = None,
) -> ResumableUpload:
    """Write `body` at `offset` (which must be the upload's), setting a deferred length to
    `length`; the upload as it now is. Bytes are acknowledged only once durable; the last
    one makes the job. A body that stops early keeps what arrived (unless `checksum`, which
    only a whole body can meet, was sent) and then raises why it stopped."""
    try:
        lease, upload = await _claim(uploads, upload_id, caller, offset, length)
    except _HeldHere as held:  # by a request of ours that waits for a client gone quiet
        if not held.holder.interrupt():
            raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(held.holder.released.wait(), INTERRUPT_WAIT)
        lease, upload = await _claim(uploads, upload_id, caller, offset, length)
    if lease is None:
        return upload  # complete already: the final request again, its answer lost
    local = uploads.writing[lease.token] = LocalWriter(asyncio.current_task())
    try:
        return await _write_claimed(
            uploads,
            lease,
            local,
            upload,
            caller,
            offset,
            body,
            content_length=content_length,
            checksum=checksum,
        )
    finally:
        del uploads.writing[lease.token]
        local.released.set()


async def _write_claimed(
    uploads: ResumableUploads,
    lease: Lease,
    local: LocalWriter,
    upload: ResumableUpload,
    caller: Principal,
    offset: int,
    body: AsyncIterable[bytes],
    *,
    content_length: int | None,
    checksum: Checksum | None,
) -> ResumableUpload:
    try:
        kept, cut, running = await _receive(
            uploads, lease, local, upload, offset, body, content_length, checksum
        )
        received = offset + kept
        if received == upload.length and upload.concat == "partial":
            return await _finish_partial(uploads, lease, upload, offset)
        if received == upload.length:
            return await _finish(uploads, lease, upload, offset, caller, running)
        await _acknowledge(uploads, lease, offset, received)
    except BaseException:
        await asyncio.shield(_release(uploads, lease))
        raise
    if running is not None and kept:
        uploads.hashes.keep(upload.id, received, running)
    if cut is not None:
        raise cut
    return _with(upload, received=received)


async def _claim(
    uploads: ResumableUploads, upload_id: str, caller: Principal, offset: int, length: int | None
) -> tuple[Lease | None, ResumableUpload]:
    """The upload, leased to this request at `offset` (no lease: it is complete, and
    `offset` is its end); raises why not."""
    lease, now = Lease(upload_id, new_token()), utcnow()
    async with uploads.db.write() as session:
        repo = UploadRepository(session)
        upload = answerable(await repo.get_owned(upload_id, caller.owner_id), upload_id, now)
        if upload.concat == "final":
            raise UploadIsFinal("A final upload is made of its parts; it takes no bytes.")
        if upload.state is UploadState.COMPLETE and offset == upload.received:
            return None, upload
        if upload.state is UploadState.COMPLETE or offset != upload.received:
            raise OffsetMismatch(
                f"The upload's offset is {upload.received}, not {offset}.",
                offset=upload.received,
            )
        holder = upload.lease_token
        dead = holder if holder and holder_is_dead(holder) else None
        until = now + timedelta(seconds=LEASE_SECONDS)
        if not await repo.claim(
            upload_id, caller.owner_id, offset, lease.token, now, until, dead_holder=dead
        ):
            busy = (
                "Another request is writing this upload; retry once it ends (HEAD tells the "
                "offset)."
            )
            local = uploads.writing.get(holder or "")
            raise _HeldHere(busy, local) if local else UploadLocked(busy, headers=retry_soon())
        if dead is not None:
            log.warning("upload %s: taken over from a dead server's request", upload_id)
        if length is not None:
            await _declare(uploads, session, repo, upload, lease, caller, length)
    return lease, upload


async def _declare(
    uploads: ResumableUploads,
    session: AsyncSession,
    repo: UploadRepository,
    upload: ResumableUpload,
    lease: Lease,
    caller: Principal,
    length: int,
) -> None:
    """Set a deferred length (creation-defer-length), within the caller's quota."""
    if upload.length is not None:
        if length != upload.length:
            raise InvalidUploadLength(
                f"Upload-Length was set already, to {upload.length}; it cannot change."
            )
        return
    if length < upload.received:
        raise InvalidUploadLength(f"{upload.received} bytes arrived already.")
    uploads.check_length(length)
    await uploads.within_quota(session, caller, length, counted=upload.received)
    await repo.declare_length(upload.id, lease.token, length)
    upload.length = length


async def _receive(
    uploads: ResumableUploads,
    lease: Lease,
    local: LocalWriter,
    upload: ResumableUpload,
    offset: int,
    body: AsyncIterable[bytes],
    content_length: int | None,
    checksum: Checksum | None,
) -> tuple[int, Exception | None, _Hash | None]:
    """The body into the file, durable: (bytes kept, why it stopped early, the running
    sha256 of the upload so far if this process could keep it)."""
    limit = (uploads.max_bytes if upload.length is None else upload.length) - offset
    if content_length is not None and content_length > limit:
        raise UploadLengthExceeded(
            f"{content_length} bytes at offset {offset} go past the upload's length "
            f"({offset + limit}).",
        )
    writer = await anyio.to_thread.run_sync(uploads.files.open, upload.id, offset)
    running = uploads.hashes.resume(upload.id, offset)
    check = checksum.start() if checksum is not None else None
    hashes = [h for h in (running, check) if h is not None]
    try:
        receiver = BodyReceiver(
            writer, offset, limit, hashes, lease.due, lambda: _renew(uploads, lease)
        )
        local.receiver = receiver
        received = await receiver.receive(body)
        kept = received.written
        if checksum is not None and check is not None:
            if received.cut is not None:
                kept = 0  # only a whole body can be checked against Upload-Checksum
            else:
                checksum.verify(check)
        if kept:
            await anyio.to_thread.run_sync(writer.sync)
    finally:
        await anyio.to_thread.run_sync(writer.close)
    return kept, received.cut, running if kept == received.written else None


async def _renew(uploads: ResumableUploads, lease: Lease) -> None:
    until = utcnow() + timedelta(seconds=LEASE_SECONDS)
    async with uploads.db.write() as session:
        renewed = await UploadRepository(session).renew(lease.upload_id, lease.token, until)
    if not renewed:
        raise lost("nothing more of this request was kept")
    lease.renewed()


async def _acknowledge(uploads: ResumableUploads, lease: Lease, offset: int, received: int) -> None:
    if received == offset:
        await _release(uploads, lease)
        return
    async with uploads.db.write() as session:
        moved = await UploadRepository(session).acknowledge(
            lease.upload_id, lease.token, offset, received, utcnow()
        )
    if not moved:
        raise lost("this request's bytes were not kept")


async def _release(uploads: ResumableUploads, lease: Lease) -> None:
    try:
        async with uploads.db.write() as session:
            await UploadRepository(session).release(lease.upload_id, lease.token)
    except Exception:  # the lease runs out by itself
        log.warning("upload %s: could not release its lease", lease.upload_id, exc_info=True)


async def _finish_partial(
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
    return _with(upload, state=UploadState.COMPLETE, received=upload.length)


async def _finish(
    uploads: ResumableUploads,
    lease: Lease,
    upload: ResumableUpload,
    offset: int,
    caller: Principal,
    running: _Hash | None,
) -> ResumableUpload:
    """The last byte landed: the job is made, and the upload completed, in one transaction;
    the file becomes the job's input (a link where storage can, else a copy)."""
    assert upload.length is not None
    path, length = uploads.files.path(upload.id), upload.length
    sha256 = running
    if sha256 is None:  # not hashed on the way by this process: read the file once
        sha256 = await anyio.to_thread.run_sync(uploads.files.sha256, upload.id)
    spool = await anyio.to_thread.run_sync(finished_spool, path, length, sha256)
    incoming = FinishedFile(spool, upload.filename, upload.content_type)
    now = utcnow()
    keep_until = now + uploads.ttl

    async def complete(session: AsyncSession, job: Job) -> None:
        repo = UploadRepository(session)
        if not await repo.complete(upload.id, lease.token, offset, job.id, now, keep_until):
            raise lost("this request's bytes were not kept")

    try:
        job = await uploads.jobs.accept_completing(
            incoming, job_request_of(upload), caller, complete
        )
    finally:
        await incoming.release()
    uploads.hashes.forget(upload.id)
    # The job's input is now a second name of the same file (or a copy): this one goes.
    # A crash before this line leaves the file to the sweep.
    await anyio.to_thread.run_sync(uploads.files.remove, upload.id)
    await uploads.jobs.executor.schedule(job.id)
    return _with(
        upload,
        state=UploadState.COMPLETE,
        received=length,
        job_id=job.id,
        expires_at=keep_until,
    )
