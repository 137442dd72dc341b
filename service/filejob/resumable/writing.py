"""One request's bytes into an upload (PATCH, or the body of a creation): claim the upload's
lease at the request's offset, receive the body into the upload's store (store.py), seal it
durable, then either acknowledge the new offset or, with the last byte, complete the upload
(completion.py): a partial one waits for its final upload, any other becomes its job in the
transaction that completes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.auth.principal import Principal
from filejob.errors import QuotaExceeded
from filejob.jobs.model import utcnow
from filejob.resumable.completion import as_written, finish, finish_partial, lost, retry_soon
from filejob.resumable.digests import Checksum
from filejob.resumable.errors import (
    InvalidUploadLength,
    OffsetMismatch,
    UploadIsFinal,
    UploadLengthExceeded,
    UploadLocked,
)
from filejob.resumable.leases import LEASE_SECONDS, Lease, holder_is_dead, new_token
from filejob.resumable.model import ResumableUpload, UploadState, answerable
from filejob.resumable.receive import BodyReceiver
from filejob.resumable.repository import UploadRepository

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.service import ResumableUploads
    from filejob.resumable.store import ChunkSink

log = logging.getLogger(__name__)


@dataclass
class LocalWriter:
    """A request of this process writing an upload. Once it has had no bytes from its client
    for `receive.STALLED_SECONDS`, it can be interrupted by a newer request for the same
    upload: the client has most likely given up on it (a cut the server has not noticed yet)
    and come back, as tusd lets it. Its unacknowledged bytes are dropped; the newer request
    starts from the offset."""

    task: asyncio.Task[object] | None
    receiver: BodyReceiver | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def interrupt(self) -> bool:
        """Interrupt it if it has stalled (see `BodyReceiver.waiting`); True if it was."""
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
        lease, upload, room = await _claim(uploads, upload_id, caller, offset, length)
    except _HeldHere as held:  # by a request of ours that waits for a client gone quiet
        if not held.holder.interrupt():
            raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(held.holder.released.wait(), INTERRUPT_WAIT)
        lease, upload, room = await _claim(uploads, upload_id, caller, offset, length)
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
            room=room,
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
    room: int | None,
) -> ResumableUpload:
    try:
        sink = await uploads.files.open(upload, offset)
        try:
            kept, cut, running = await _receive(
                uploads, lease, local, sink, upload, offset, body, content_length, checksum, room
            )
            received = offset + kept
            last = received == upload.length
            if kept or last:  # durable before it is acknowledged
                await anyio.to_thread.run_sync(partial(sink.seal, received, last=last))
            if last and upload.concat == "partial":
                done = await finish_partial(uploads, lease, upload, offset)
                await anyio.to_thread.run_sync(sink.acknowledged)
                return done
            if last:
                return await finish(uploads, lease, upload, offset, caller, running)
            await _acknowledge(uploads, lease, offset, received)
            if kept:
                await anyio.to_thread.run_sync(sink.acknowledged)
        finally:
            sink.close()  # not in a thread: a cancelled request must still let go of it
    except BaseException:
        await asyncio.shield(_release(uploads, lease))
        raise
    if running is not None and kept:
        uploads.hashes.keep(upload.id, received, running)
    if cut is not None:
        raise cut
    return as_written(upload, received=received)


async def _claim(
    uploads: ResumableUploads, upload_id: str, caller: Principal, offset: int, length: int | None
) -> tuple[Lease | None, ResumableUpload, int | None]:
    """The upload, leased to this request at `offset` (no lease: it is complete, and
    `offset` is its end), and, while its length is deferred, the size the caller's quota lets
    it reach (None: no limit but the server's); raises why not."""
    lease, now = Lease(upload_id, new_token()), utcnow()
    async with uploads.db.write() as session:
        repo = UploadRepository(session)
        upload = answerable(await repo.get_owned(upload_id, caller.owner_id), upload_id, now)
        if upload.concat == "final":
            raise UploadIsFinal("A final upload is made of its parts; it takes no bytes.")
        if upload.state is UploadState.COMPLETE and offset == upload.received:
            return None, upload, None
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
        # A deferred length's bytes arrive before it is declared (and counted, _declare):
        # they may not grow the upload past the quota meanwhile.
        room = None
        if upload.length is None:
            room = await uploads.room(session, caller, counted=upload.received)
    return lease, upload, room


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
    sink: ChunkSink,
    upload: ResumableUpload,
    offset: int,
    body: AsyncIterable[bytes],
    content_length: int | None,
    checksum: Checksum | None,
    room: int | None,
) -> tuple[int, Exception | None, _Hash | None]:
    """The body into the sink: (bytes kept, why it stopped early, the running sha256 of the
    upload so far if this process could keep it). A deferred upload may grow to `room` bytes
    at most (the caller's quota)."""
    limit = (uploads.max_bytes if upload.length is None else upload.length) - offset
    by_quota = room is not None and room - offset < limit
    if room is not None and by_quota:
        limit = max(0, room - offset)
    if content_length is not None and content_length > limit:
        if by_quota:
            raise _over_quota(content_length, offset, room)
        raise UploadLengthExceeded(
            f"{content_length} bytes at offset {offset} go past the upload's length "
            f"({offset + limit}).",
        )
    running = uploads.hashes.resume(upload.id, offset)
    check = checksum.start() if checksum is not None else None
    hashes = [h for h in (running, check) if h is not None]
    receiver = BodyReceiver(sink, offset, limit, hashes, lease.due, lambda: _renew(uploads, lease))
    local.receiver = receiver
    try:
        received = await receiver.receive(body)
    except UploadLengthExceeded as exc:
        if by_quota:
            raise _over_quota(None, offset, room) from exc
        raise
    kept = received.written
    if checksum is not None and check is not None:
        if received.cut is not None:
            kept = 0  # only a whole body can be checked against Upload-Checksum
        else:
            checksum.verify(check)
    return kept, received.cut, running if kept == received.written else None


def _over_quota(content_length: int | None, offset: int, room: int | None) -> QuotaExceeded:
    more = "more bytes" if content_length is None else f"{content_length} bytes"
    return QuotaExceeded(
        f"{more.capitalize()} at offset {offset} would take this upload past the "
        f"{room} bytes the storage quota leaves it. Delete finished jobs or uploads."
    )


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
