"""An import's fetch: the first phase of its attempt, which makes the job's input.

The source streams (untrusted/downloads.py: every hop judged, every connection pinned) into a
spool in storage's temp area, hashed on the way, bounded by the upload limit and by the
owner's quota less what the owner stores and its uploads in progress reserved (abandoned as
soon as either is passed, before a byte when the announced length already does), while its
progress is saved (`fetched_bytes`, `source_size`) and the stop signal and the attempt's
deadline are watched. The file is then
judged as an upload is (not empty, the sha256 the client sent, a type the processor takes),
stored under the job's input key, and named by the row in one write fenced on the attempt,
the quota checked again in its transaction. The attempt then reads the spool, still open, as
it reads a fresh upload. A spool that is not handed on is closed: nothing is left in temp.

How a fetch fails is how the attempt ends: `NotStarted` (the job fails: refused, too large,
an answer that will not change), `Raised(RetryableError)` (tried again after a backoff: the
network, a timeout, an origin that is down), `Stopped` (a cancel, a shutdown, the deadline).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from filejob.db.engine import Database
from filejob.jobs.admission import no_reservations, usage_of
from filejob.jobs.attempt import AttemptEnd, NotStarted, Raised, Stopped
from filejob.jobs.control import StopReason, StopSignal
from filejob.jobs.error_text import AttemptFiles
from filejob.jobs.imports import ImportPolicy
from filejob.jobs.model import Job
from filejob.jobs.repository import JobRepository
from filejob.jobs.storage_keys import input_key
from filejob.processors.base import Processor, RetryableError
from filejob.processors.sniff import SNIFF_BYTES, sniff
from filejob.storage.base import Storage
from filejob.storage.ingest import store_file
from filejob.storage.spool import UploadSpool
from filejob.untrusted.downloads import DownloadFailed, GuardedDownloads
from filejob.untrusted.filenames import sanitize_filename

log = logging.getLogger(__name__)

BATCH_BYTES = 1024 * 1024  # written (and hashed) in a worker thread a batch at a time
NO_FILES = AttemptFiles(None, None)


@dataclass
class FetchedInput:
    """A fetched input, stored and named by the row, its spool still open: an `IncomingFile`
    for the attempt. Released by whoever fetched it."""

    spool: UploadSpool
    filename: str
    content_type: str

    @property
    def file(self) -> BinaryIO:
        return cast(BinaryIO, self.spool)  # an io.RawIOBase that is a binary file

    async def seek(self, offset: int) -> None:
        self.spool.seek(offset)

    async def read(self, size: int = -1) -> bytes:
        return await anyio.to_thread.run_sync(self.spool.read, size)

    async def release(self) -> None:
        self.spool.close()


@dataclass
class _Transfer:
    """One fetch as it goes: what the origin said, and the bytes so far."""

    fetched: int = 0
    size: int | None = None  # announced
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class _Room:
    """How many bytes the fetch may bring: the upload limit, and the owner's quota less what
    the owner stores and reserved (None: unlimited)."""

    limit: int
    quota: int | None
    quota_room: int | None

    def check(self, size: int) -> None:
        if size > self.limit:
            raise DownloadFailed(
                "source_too_large", f"The source exceeds the limit of {self.limit} bytes."
            )
        if self.quota_room is not None and size > self.quota_room:
            raise DownloadFailed(
                "quota_exceeded",
                f"The source takes more than the {max(self.quota_room, 0)} bytes left of the "
                f"storage quota of {self.quota} bytes. Delete finished jobs, or download their "
                "results with delete_after_download.",
            )


class InputFetcher:
    """Fetches imports' inputs (see the module doc). Close it when done."""

    def __init__(
        self, db: Database, storage: Storage, policy: ImportPolicy, *, progress_interval: float
    ) -> None:
        self.db = db
        self.storage = storage
        self.policy = policy
        self.progress_interval = progress_interval
        self.reserved = policy.reserved or no_reservations
        self.downloads = GuardedDownloads(policy.rules, timeout=policy.timeout)

    async def close(self) -> None:
        await self.downloads.aclose()

    async def fetch(
        self, job: Job, processor: Processor, stop: StopSignal
    ) -> FetchedInput | AttemptEnd:
        """Fetch the claimed import `job`'s input, store it and name it in the row (and on
        `job`); or say how the attempt ended instead. Raises only for trouble of the
        server's own (the database)."""
        deadline = anyio.current_time() + job.timeout_seconds
        room = await self._room(job)
        spool = self.storage.new_spool(self.policy.spool_memory_bytes)
        try:
            if room.quota_room is not None and room.quota_room <= 0:
                room.check(1)  # refused before connecting, as its first byte would be
            transfer = _Transfer()
            ended = await self._download(job, spool, room, transfer, stop, deadline)
            if ended is None:
                fetched = await self._adopt(job, processor, spool, transfer)
                if isinstance(fetched, FetchedInput):
                    return fetched
                ended = fetched
        except DownloadFailed as failure:
            ended = _ended(failure)
        except BaseException:
            spool.close()
            raise
        spool.close()
        return ended

    async def _room(self, job: Job) -> _Room:
        quota_room = None
        if job.owner_quota_bytes is not None:
            async with self.db.read() as session:
                _, stored = await usage_of(JobRepository(session), self.reserved, job.owner_id)
            quota_room = job.owner_quota_bytes - stored
        return _Room(self.policy.max_bytes, job.owner_quota_bytes, quota_room)

    async def _download(
        self,
        job: Job,
        spool: UploadSpool,
        room: _Room,
        transfer: _Transfer,
        stop: StopSignal,
        deadline: float,
    ) -> AttemptEnd | None:
        """Receive the source into `spool`, its progress saved, its stop and deadline
        watched; None once it is all there."""
        failure: DownloadFailed | OSError | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._save_progress, job, transfer)
            group.start_soon(_watch, stop, deadline, group.cancel_scope)
            try:
                await self._receive(job, spool, room, transfer)
            except (DownloadFailed, OSError) as exc:  # OSError: the spool's disk
                failure = exc
            group.cancel_scope.cancel()
        if stop.is_set():
            return Stopped(stop.reason or StopReason.CANCEL)
        if isinstance(failure, OSError):
            return Raised(failure, NO_FILES)  # worth another try, as a processor's I/O error
        return None if failure is None else _ended(failure)

    async def _receive(
        self, job: Job, spool: UploadSpool, room: _Room, transfer: _Transfer
    ) -> None:
        assert job.source_url is not None  # an import's
        async with self.downloads.open(job.source_url) as download:
            transfer.size = download.length
            transfer.filename, transfer.content_type = download.filename, download.content_type
            if download.length is not None:
                room.check(download.length)  # refused before a byte of the body is read
            batch: list[bytes] = []
            batched = 0
            async for chunk in download.chunks():
                transfer.fetched += len(chunk)
                room.check(transfer.fetched)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= BATCH_BYTES:
                    await anyio.to_thread.run_sync(_write, spool, batch)
                    batch, batched = [], 0
            if batch:
                await anyio.to_thread.run_sync(_write, spool, batch)

    async def _save_progress(self, job: Job, transfer: _Transfer) -> None:
        """Write the fetch's progress whenever it moved, at most every `progress_interval`
        (the first write at once: the fetch has begun)."""
        written: tuple[int, int | None] | None = None
        while True:
            state = (transfer.fetched, transfer.size)
            if state != written:
                async with self.db.write() as session:
                    await JobRepository(session).set_fetched(job.id, job.attempts, *state)
                written = state
            await anyio.sleep(self.progress_interval)

    async def _adopt(
        self, job: Job, processor: Processor, spool: UploadSpool, transfer: _Transfer
    ) -> FetchedInput | AttemptEnd:
        """Judge the fetched file as an upload is, store it, and name it in the row."""
        size, sha256 = spool.size, spool.sha256.hexdigest()
        if size == 0:
            return NotStarted("empty_file", "The source's file has no content.")
        if job.input_sha256 and job.input_sha256 != sha256:
            return NotStarted(
                "digest_mismatch",
                f"The source's sha-256 is {sha256}, not the {job.input_sha256} that was sent "
                "with the job. Nothing was kept.",
            )
        head = await anyio.to_thread.run_sync(_head, spool)
        max_bytes = self.policy.max_filename_bytes
        filename = sanitize_filename(transfer.filename, job.input_filename, max_bytes=max_bytes)
        content_type = sniff(head, transfer.content_type, filename)
        if not processor.accepts(content_type):
            return NotStarted(
                "unsupported_media_type", f"{processor.name} does not accept {content_type} input."
            )
        key = input_key(job.id)
        try:
            await store_file(self.storage, cast(BinaryIO, spool), key)
        except OSError as exc:  # the disk or the store: worth another try, as a processor's
            return Raised(exc, NO_FILES)
        named = await self._name(job, key, filename, content_type, spool, transfer)
        if named is not None:
            await self.storage.delete(key)
            return named
        job.input_key, job.input_size, job.input_sha256 = key, size, sha256
        job.input_filename, job.input_content_type = filename, content_type
        job.fetched_bytes, job.source_size = size, transfer.size
        # The host only: a URL's path and query may carry the owner's credentials.
        host = urlsplit(job.source_url or "").hostname
        log.info("job %s: fetched %d bytes from %s", job.id, size, host)
        return FetchedInput(spool, filename, content_type)

    async def _name(
        self,
        job: Job,
        key: str,
        filename: str,
        content_type: str,
        spool: UploadSpool,
        transfer: _Transfer,
    ) -> AttemptEnd | None:
        """Name the stored input in the row, within the owner's quota; None if it did, else
        how the attempt ends."""
        size, sha256 = spool.size, spool.sha256.hexdigest()
        async with self.db.write() as session:
            repo = JobRepository(session)
            if job.owner_quota_bytes is not None:
                await repo.lock_owner(job.owner_id)  # as concurrent submits do
                _, stored = await usage_of(repo, self.reserved, job.owner_id)
                room = _Room(
                    self.policy.max_bytes, job.owner_quota_bytes, job.owner_quota_bytes - stored
                )
                try:
                    room.check(size)
                except DownloadFailed as failure:
                    return _ended(failure)
            named = await repo.set_input(
                job,
                key=key,
                filename=filename,
                content_type=content_type,
                size=size,
                sha256=sha256,
                announced=transfer.size,
            )
        if not named:  # cancelled meanwhile, or the attempt was taken over: not ours to name
            log.warning(
                "job %s: attempt %d no longer current after its fetch", job.id, job.attempts
            )
            return Stopped(StopReason.CANCEL)
        return None


async def _watch(stop: StopSignal, deadline: float, scope: anyio.CancelScope) -> None:
    """End the fetch when it is asked to stop, or at the attempt's deadline."""
    while not stop.is_set():
        if anyio.current_time() >= deadline:
            stop.request(StopReason.TIMEOUT)
            break
        await anyio.sleep(0.05)
    scope.cancel()


def _ended(failure: DownloadFailed) -> AttemptEnd:
    if failure.transient:
        return Raised(RetryableError(failure.message, failure.code), NO_FILES)
    return NotStarted(failure.code, failure.message)


def _write(spool: UploadSpool, batch: list[bytes]) -> None:
    spool.write(batch[0] if len(batch) == 1 else b"".join(batch))


def _head(spool: UploadSpool) -> bytes:
    spool.seek(0)
    head = spool.read(SNIFF_BYTES)
    spool.seek(0)
    return head
