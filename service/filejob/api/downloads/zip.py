"""A zip of a job's results, made while it is sent: constant memory, no temp file.

zipstream-ng writes the archive's records; each member's bytes are read from storage a chunk
at a time when the archive reaches it. The members are stored, not compressed: results are
mostly compressed already (images, archives, Parquet), and storing is what lets the archive's
size be known before its first byte (`Content-Length`, so that a complete download can be told
from a cut one, as with every other download). zipstream-ng's generator is synchronous: it runs
in a worker thread, one hop per chunk of about `CHUNK` bytes, and opens each member's blob
from that thread through the event loop (`anyio.from_thread`).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterator, Sequence

import anyio.from_thread
import anyio.to_thread
from zipstream import ZipStream  # type: ignore[import-untyped]  # no types published

from filejob.api.downloads.stream import CHUNK
from filejob.jobs.model import JobResult
from filejob.storage.base import Storage

log = logging.getLogger(__name__)


class _Member:
    """One result's bytes, read when the archive reaches it (in the archive's thread)."""

    def __init__(self, storage: Storage, key: str) -> None:
        self.storage = storage
        self.key = key

    def __iter__(self) -> Iterator[bytes]:
        reader = anyio.from_thread.run(self.storage.open, self.key)
        try:
            offset = 0
            while offset < reader.size:
                chunk = reader.read_at(offset, min(CHUNK, reader.size - offset))
                if not chunk:
                    return
                offset += len(chunk)
                yield chunk
        finally:
            reader.close()


class ResultsZip:
    """The zip of `results` (stored ones, in order) as a `ChunkSource` of known length."""

    def __init__(self, storage: Storage, results: Sequence[JobResult]) -> None:
        archive = ZipStream(sized=True)
        for name, result in zip(member_names(results), results, strict=True):
            archive.add(_Member(storage, result.key or ""), name, size=result.size)
        self.length: int = len(archive)
        self._chunks: Iterator[bytes] = iter(archive)

    async def next_chunk(self) -> bytes:
        """The next `CHUNK` bytes or so; b"" once done, or if a member cannot be read (the
        response then ends short of its length: the client sees a cut download)."""
        try:
            return await anyio.to_thread.run_sync(self._gather)
        except Exception:
            log.exception("the zip of results ended early")
            return b""

    def _gather(self) -> bytes:
        parts: list[bytes] = []
        gathered = 0
        for part in self._chunks:
            parts.append(part)
            gathered += len(part)
            if gathered >= CHUNK:
                break
        return b"".join(parts)

    def close(self) -> None:
        """Stop the archive where it is (the member being read closes its reader)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def member_names(results: Sequence[JobResult]) -> list[str]:
    """A name in the archive for each result: its file name (under its step's folder, for a
    job with steps), made unique with " (2)", " (3)"... before the extension."""
    taken: set[str] = set()
    names = []
    for result in results:
        name = f"{result.step}/{result.filename}" if result.step else result.filename
        stem, extension = posixpath.splitext(name)
        count = 1
        while name.lower() in taken:
            count += 1
            name = f"{stem} ({count}){extension}"
        taken.add(name.lower())
        names.append(name)
    return names
