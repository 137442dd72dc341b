"""Putting an uploaded file into storage with as few disk writes as the backend allows."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

import anyio.to_thread

from filejob.storage.base import Storage
from filejob.storage.spool import UploadSpool

CHUNK = 1024 * 1024
INLINE_BYTES = 64 * 1024  # small enough that its write to the page cache stays short


async def store_file(storage: Storage, file: BinaryIO, key: str) -> bool:
    """Store `file`'s whole content as `key`: linked in place where the backend can adopt it,
    else streamed through a writer. Returns True when it was adopted (no copy made)."""
    adopter, streamer = storage.abilities.adopts_local_files, storage.abilities.streams_local_files
    if adopter is not None and await adopter.adopt(file, key):
        return True
    if streamer is not None:  # no second local copy on the way
        await streamer.put_file(file, key)
        return False
    writer = await storage.create(key)
    try:
        if isinstance(file, UploadSpool) and not file.rolled and file.size <= INLINE_BYTES:
            # A few bytes already in memory: a page-cache write, cheaper on the event loop
            # than a round trip to a worker thread (spools write their chunks there too).
            copy_file(file, writer.file)
        else:
            await anyio.to_thread.run_sync(copy_file, file, writer.file)
    except BaseException:
        await writer.discard()
        raise
    await writer.commit()
    return False


def copy_file(source: BinaryIO, target: BinaryIO) -> None:
    """All of `source`, from its start, into `target` (flushed), a chunk at a time."""
    source.seek(0)
    while chunk := source.read(CHUNK):
        target.write(chunk)
    target.flush()


async def digest_of(file: BinaryIO) -> tuple[int, str]:
    """Size and sha256 of `file`: free for an `UploadSpool`, else read once."""
    if isinstance(file, UploadSpool):
        return file.size, file.sha256.hexdigest()
    return await anyio.to_thread.run_sync(_digest, file)


def _digest(file: BinaryIO) -> tuple[int, str]:
    file.seek(0)
    sha, size = hashlib.sha256(), 0
    while chunk := file.read(CHUNK):
        sha.update(chunk)
        size += len(chunk)
    file.seek(0)
    return size, sha.hexdigest()
