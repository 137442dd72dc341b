"""Concatenation on S3 (multipart.py): the partial uploads' multipart uploads completed into
objects, then joined into the final upload's multipart upload: copied server-side part by part
(UploadPartCopy) where each object but the last holds at least a part's bytes, as S3 wants of
every part but the last; else streamed through a part buffer. Either way each object is read
once, for the final upload's sha256 (no digest of the parts adds up to the whole's).

A failure (or a refused job, `FinishedConcat.restore`) makes each completed part a multipart
upload again, reopened from its object: the parts stay as they were.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from filejob.resumable.errors import UploadExpired
from filejob.resumable.multipart import READ_BYTES, copy_object_parts, object_key
from filejob.resumable.part_sink import PART_BYTES, PartSink
from filejob.storage.s3 import S3BlobReader

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.resumable.multipart import MultipartStore

log = logging.getLogger(__name__)


def join(store: MultipartStore, final_id: str, parts: list[tuple[str, int]]) -> _Hash:
    """The final upload's object made of `parts` ((id, length), in order); its sha256
    (blocking)."""
    completed: list[tuple[str, int]] = []
    try:
        for part_id, length in parts:
            _as_object(store, part_id, length)
            completed.append((part_id, length))
        return _build(store, final_id, parts)
    except BaseException:
        for part_id, length in completed:
            try:
                store.reopen(part_id, length)
            except Exception:  # it stays an object; the next use reopens it
                log.warning("partial upload %s: could not reopen it", part_id, exc_info=True)
        raise


def _as_object(store: MultipartStore, part_id: str, length: int) -> None:
    """The finished partial upload completed into the object of its key (already done by an
    earlier attempt that did not get to reopen it: left as it is)."""
    key = object_key(part_id)
    pending = [p for p in store.parts.pending(key) if p.key == key]
    store.forget(part_id)
    if store.parts.exists(key):
        for stale in pending:
            store.parts.abort(key, stale.upload_id)
        return
    if not pending:
        raise UploadExpired(f"The bytes of partial upload {part_id} are gone.")
    latest = max(pending, key=lambda p: p.initiated)
    store.complete(part_id, length, latest.upload_id)


def _build(store: MultipartStore, final_id: str, parts: list[tuple[str, int]]) -> _Hash:
    key = object_key(final_id)
    sources = [(object_key(part_id), length) for part_id, length in parts]
    multipart = store.parts.create(key)
    try:
        if all(length >= PART_BYTES for _, length in parts[:-1]):
            etags = copy_object_parts(store.parts, key, multipart, sources)
            sha = hashlib.sha256()
            for source, size in sources:
                for chunk in _read(store, source, size):
                    sha.update(chunk)
        else:
            sha, etags = _stream(store, final_id, key, multipart, sources)
        store.parts.complete(key, multipart, etags)
    except BaseException:
        store.parts.abort(key, multipart)
        raise
    return sha


def _stream(
    store: MultipartStore,
    final_id: str,
    key: str,
    multipart: str,
    sources: list[tuple[str, int]],
) -> tuple[_Hash, list[tuple[int, str]]]:
    """The objects read in order into the final upload's parts, through one part buffer."""
    sha, position = hashlib.sha256(), 0
    sink = PartSink(store, final_id, key, multipart, 0, store.buffers.open())
    try:
        for source, size in sources:
            for chunk in _read(store, source, size):
                sha.update(chunk)
                sink.write(chunk, position)
                position += len(chunk)
        sink.seal(position, last=True)
    finally:
        sink.close()
    return sha, sorted(sink.etags.items())


def _read(store: MultipartStore, key: str, size: int) -> Iterator[bytes]:
    reader = S3BlobReader(store.storage.store, key, size)
    for start in range(0, size, READ_BYTES):
        yield reader.read_at(start, READ_BYTES)
