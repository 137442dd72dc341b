"""An upload's bytes in an S3 multipart upload (store.py's `UploadStore` for S3 storage), as
tusd's s3store keeps them, with one difference: the offset is the database row's, not the
bucket's, so the bucket must hold every acknowledged byte at every instant.

Upload U's multipart upload is for the key `uploads/U/object`. Part n holds bytes
[(n-1)·P, n·P) of the upload (P = `PART_BYTES`; part numbers follow from offsets, so no
request lists parts); the bytes past the last whole part at offset r, `r mod P` of them, are
the tail object `uploads/U/r`, written before the row says r and deleted only once it says
more. A server killed at any instant leaves the acknowledged offset's bytes in the bucket; any
server goes on from there (part_sink.py: a request's bytes, through a one-part buffer in a
temp file).

Everything of U lives under `uploads/U/`, which the jobs' orphan sweep never lists (s3.py):
only the uploads' own sweep judges it, by U's row. (Under `inputs/`, a completed object whose
job is not committed yet, or a partial upload's waiting to be joined, would look like a job
input without a job, and be swept.)

The last byte: CompleteMultipartUpload makes `uploads/U/object` server-side, and storage
places it as the job's input (`StoredObject`: no byte comes back through this server; a
server-side copy, as the job's key is not the upload's). The sha256 is the running one where
this process saw every byte in order (digests.RunningHashes); else the object is read once to
hash it: hashlib cannot hand its state to another server, and no part of a multipart upload in
progress can be read. A job refused at the end, or a crash between completion and commit,
leaves the object: the next use reopens the upload from it (a new multipart upload whose
parts are copied from the object server-side; the tail is still there).

Concatenation: the partial uploads are completed, then copied part by part into the final one
(UploadPartCopy) where each but the last holds at least a part's bytes (S3's rule for parts),
else streamed through a part buffer; either way read once for the sha256.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio.to_thread

from filejob.errors import ServiceUnavailable
from filejob.resumable.errors import UploadExpired
from filejob.resumable.files import checked_id
from filejob.resumable.part_sink import PART_BYTES, PartSink, tails_of
from filejob.storage.s3 import UPLOADS_AREA, S3BlobReader, S3Storage, StoredObject
from filejob.storage.s3_parts import MAX_PARTS, MultipartGone, Part, Pending, S3Parts, copy_ranges
from filejob.storage.temp_area import TempArea

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.model import ResumableUpload

log = logging.getLogger(__name__)
T = TypeVar("T")
READ_BYTES = 4 * 1024 * 1024  # one ranged GET while an object is read for its sha256
COPIES_AT_ONCE = 8


def object_key(upload_id: str) -> str:
    """The key of the upload's multipart upload, in the upload's own area beside its tails
    (a tail's name is its offset, so `object` is never one)."""
    return f"{tails_of(checked_id(upload_id))}object"


class MultipartStore:
    def __init__(self, storage: S3Storage, parts: S3Parts, folder: Path) -> None:
        self.storage, self.parts = storage, parts
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.buffers = TempArea(folder)  # part buffers: unnamed files, gone with the request
        self.max_bytes: int | None = PART_BYTES * MAX_PARTS
        self._ids: OrderedDict[str, str] = OrderedDict()  # upload id -> multipart id
        self._ids_lock = threading.Lock()

    # -- the multipart upload of an upload --------------------------------------------------

    def create(self, upload_id: str) -> None:
        self._remember(upload_id, self.parts.create(object_key(upload_id)))

    def forget(self, upload_id: str) -> None:
        with self._ids_lock:
            self._ids.pop(upload_id, None)

    def _remember(self, upload_id: str, multipart: str) -> None:
        with self._ids_lock:
            self._ids[upload_id] = multipart
            self._ids.move_to_end(upload_id)
            while len(self._ids) > 4096:
                self._ids.popitem(last=False)

    def multipart(self, upload_id: str, kept: int) -> str:
        """The upload's multipart upload, of which `kept` bytes count (blocking): this
        process's, else the one pending for its key, else reopened from the object a
        completion left."""
        with self._ids_lock:
            known = self._ids.get(upload_id)
        if known is not None:
            return known
        key = object_key(upload_id)
        pending = [p for p in self.parts.pending(key) if p.key == key]
        if self.parts.exists(key):
            return self.reopen(upload_id, kept, pending)
        if not pending:
            raise UploadExpired(f"The bytes of upload {upload_id} are gone; start a new one.")
        latest = max(pending, key=lambda p: p.initiated)
        self._remember(upload_id, latest.upload_id)
        return latest.upload_id

    def reopen(self, upload_id: str, kept: int, stale: Sequence[Pending] = ()) -> str:
        """A new multipart upload made of the object of the upload's key, its first `kept`
        bytes (whole parts, or all of a finished upload), copied server-side; the object
        goes. The tail past them is still where it was."""
        key = object_key(upload_id)
        for pending in stale:  # a reopening cut short
            self.parts.abort(key, pending.upload_id)
        multipart = self.parts.create(key)
        ranges = [(s, min(kept, s + PART_BYTES)) for s in range(0, kept, PART_BYTES)]
        _in_parallel(
            [
                _bound(self.parts.copy_part, key, multipart, number, key, start, end)
                for number, (start, end) in enumerate(ranges, start=1)
            ]
        )
        self.parts.delete([key])
        self._remember(upload_id, multipart)
        log.info("upload %s: reopened from its completed object (%d bytes)", upload_id, kept)
        return multipart

    def complete(self, upload_id: str, length: int, multipart: str) -> bool:
        """Complete the upload's multipart upload of `length` bytes into the object of its
        key (blocking); True if a part was found uploaded twice with different bytes (the
        running sha256 may then not be the object's)."""
        key = object_key(upload_id)
        try:
            # Listing the parts of a multipart upload another server has just closed (this
            # process's cached id is stale) fails as completing it would: a retry finds it.
            etags, ambiguous = _chosen(self.parts.parts(key, multipart), length)
            self.parts.complete(key, multipart, etags)
        except MultipartGone:
            self.forget(upload_id)
            raise ServiceUnavailable(
                "The upload's storage changed while it was completed; retry.",
                headers={"Retry-After": "1"},
            ) from None
        self.forget(upload_id)
        return ambiguous

    def sha256(self, key: str, length: int) -> _Hash:
        """The object's sha256, read once by ranges (blocking)."""
        sha = hashlib.sha256()
        reader = S3BlobReader(self.storage.store, key, length)
        for start in range(0, length, READ_BYTES):
            sha.update(reader.read_at(start, READ_BYTES))
        return sha

    # -- UploadStore ------------------------------------------------------------------------

    async def open(self, upload: ResumableUpload, offset: int) -> PartSink:
        def opening() -> PartSink:
            multipart = self.multipart(upload.id, offset - offset % PART_BYTES)
            buffer = self.buffers.open()
            sink = PartSink(self, upload.id, object_key(upload.id), multipart, offset, buffer)
            try:
                sink.load_tail()
            except BaseException:
                sink.close()
                raise
            return sink

        return await anyio.to_thread.run_sync(opening)

    async def finished(
        self, upload: ResumableUpload, offset: int, sha256: _Hash | None
    ) -> FinishedObject:
        assert upload.length is not None
        length, key = upload.length, object_key(upload.id)
        whole_parts = offset - offset % PART_BYTES

        def completing() -> bool:
            return self.complete(upload.id, length, self.multipart(upload.id, whole_parts))

        ambiguous = await anyio.to_thread.run_sync(completing)
        finished = FinishedObject(self, upload.id, StoredObject(self.storage, key, length, sha256))
        finished.restore_to = whole_parts
        if sha256 is None or ambiguous:
            try:
                finished.spool.sha256 = await anyio.to_thread.run_sync(self.sha256, key, length)
            except Exception:
                await finished.restore()
                raise
        return finished

    async def concatenate(self, final_id: str, parts: list[tuple[str, int]]) -> FinishedConcat:
        from filejob.resumable.concat_parts import join

        sha256 = await anyio.to_thread.run_sync(join, self, final_id, parts)
        length = sum(size for _, size in parts)
        spool = StoredObject(self.storage, object_key(final_id), length, sha256)
        return FinishedConcat(self, spool, parts)

    def remove(self, upload_id: str) -> None:
        """Abort the upload's multipart upload, delete its tails and its completed object
        (whose bytes are a job's input by now, or no longer wanted)."""
        key = object_key(upload_id)
        for pending in self.parts.pending(key):
            if pending.key == key:
                self.parts.abort(key, pending.upload_id)
        self.parts.delete([k for k, _ in self.parts.keys(tails_of(upload_id))])
        self.forget(upload_id)

    def names_older_than(self, seconds: float) -> list[str]:
        cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
        names = {
            p.key.removeprefix(UPLOADS_AREA).split("/", 1)[0]
            for p in self.parts.pending(UPLOADS_AREA)
            if p.initiated < cutoff
        }
        names |= {
            key.removeprefix(UPLOADS_AREA).split("/", 1)[0]
            for key, modified in self.parts.keys(UPLOADS_AREA)
            if modified < cutoff
        }
        self.buffers.sweep(seconds)  # buffers a crash left named (where unnamed ones fail)
        return sorted(name for name in names if _valid(name))


class FinishedObject:
    """A finished upload completed into the object of its key (store.py's `FinishedBytes`)."""

    def __init__(self, store: MultipartStore, upload_id: str, spool: StoredObject) -> None:
        self.spool, self.key = spool, spool.key
        self.restore_to = 0
        self._store, self._upload_id = store, upload_id

    async def kept(self, input_key: str | None) -> None:
        self.spool.close()

        def drop() -> None:
            if input_key != self.key:
                self._store.parts.delete([self.key])
            self._store.remove(self._upload_id)  # its tails

        await anyio.to_thread.run_sync(drop)

    async def restore(self) -> None:
        self.spool.close()
        await anyio.to_thread.run_sync(self._store.reopen, self._upload_id, self.restore_to)

    async def discard(self) -> None:
        self.spool.close()

        def drop() -> None:
            self._store.parts.delete([self.key])
            self._store.remove(self._upload_id)

        await anyio.to_thread.run_sync(drop)


class FinishedConcat:
    """A final upload's object, made of partial uploads completed for it."""

    def __init__(
        self, store: MultipartStore, spool: StoredObject, parts: list[tuple[str, int]]
    ) -> None:
        self.spool, self.key = spool, spool.key
        self._store, self._parts = store, parts

    async def kept(self, input_key: str | None) -> None:
        self.spool.close()
        used = [object_key(part_id) for part_id, _ in self._parts]
        drop = used + ([self.key] if input_key != self.key else [])
        await anyio.to_thread.run_sync(self._store.parts.delete, drop)

    async def restore(self) -> None:
        """The final object goes; each part is a multipart upload again, as it was."""
        self.spool.close()

        def undo() -> None:
            self._store.parts.delete([self.key])
            for part_id, length in self._parts:
                self._store.reopen(part_id, length)

        await anyio.to_thread.run_sync(undo)

    async def discard(self) -> None:
        await self.restore()  # the parts could still make another final upload


def _chosen(listed: list[Part], length: int) -> tuple[list[tuple[int, str]], bool]:
    """(number, ETag) of the parts `length` bytes are made of, and whether a number had two
    different uploads of its size (a request not acknowledged, its part sent again)."""
    count = max(1, -(-length // PART_BYTES))
    sizes = {number: PART_BYTES for number in range(1, count)} | {
        count: length - (count - 1) * PART_BYTES
    }
    fitting: dict[int, list[str]] = {}
    for part in listed:
        if sizes.get(part.number) == part.size:
            fitting.setdefault(part.number, []).append(part.etag)
    missing = [number for number in sizes if number not in fitting]
    if missing:
        raise RuntimeError(f"parts {missing[:5]} of a finished upload are missing")
    ambiguous = any(len(set(etags)) > 1 for etags in fitting.values())
    return [(number, fitting[number][-1]) for number in sorted(sizes)], ambiguous


def _valid(name: str) -> bool:
    try:
        checked_id(name)
    except ValueError:
        return False
    return True


def _bound(function: Callable[..., T], *args: object) -> Callable[[], T]:
    return lambda: function(*args)


def _in_parallel(calls: list[Callable[[], T]]) -> list[T]:
    """Each call's result, in order; a few at once (server-side copies wait on the store)."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=COPIES_AT_ONCE) as pool:
        return list(pool.map(lambda call: call(), calls))


def copy_object_parts(
    parts: S3Parts, key: str, multipart: str, sources: list[tuple[str, int]]
) -> list[tuple[int, str]]:
    """Each object of `sources` ((key, size), in order) copied server-side into `multipart`
    as the next parts (each at most as large as UploadPartCopy allows); (number, ETag)s."""
    ranges = [(source, start, end) for source, size in sources for start, end in copy_ranges(size)]
    etags = _in_parallel(
        [
            _bound(parts.copy_part, key, multipart, number, source, start, end)
            for number, (source, start, end) in enumerate(ranges, start=1)
        ]
    )
    return list(enumerate(etags, start=1))
