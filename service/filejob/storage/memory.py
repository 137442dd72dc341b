"""Blobs in a dict: a `Storage` for unit tests, which settings never choose.

Spools stay in memory too (what they roll over to is another `BytesIO`): nothing touches the
disk, nothing needs cleaning up, and uploads still go through the same `UploadSpool` as with
the real backends. It has none of the optional abilities, so callers take their generic paths
(a writer, not adoption or streaming).
"""

from __future__ import annotations

import builtins
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from filejob.storage.base import Abilities, BlobInfo, BlobNotFound, abilities_of
from filejob.storage.spool import UploadSpool


@dataclass(frozen=True)
class _Blob:
    data: bytes
    modified: datetime

    def info(self, key: str) -> BlobInfo:
        return BlobInfo(key, len(self.data), self.modified)


class MemoryBlobReader:
    """Holds the blob's bytes: deleting the key meanwhile does not affect it."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data)
        self._data = data
        self.file: BinaryIO = io.BytesIO(data)

    def read_at(self, offset: int, size: int) -> bytes:
        return self._data[offset : offset + max(size, 0)]

    def close(self) -> None:
        self.file.close()


class MemoryBlobWriter:
    def __init__(self, storage: MemoryStorage, key: str) -> None:
        self._storage, self._key = storage, key
        self._buffer = io.BytesIO()
        self.file: BinaryIO = self._buffer

    async def commit(self) -> BlobInfo:
        blob = _Blob(self._buffer.getvalue(), datetime.now(UTC))
        self.file.close()
        self._storage.blobs[self._key] = blob
        return blob.info(self._key)

    async def discard(self) -> None:
        self.file.close()


class _MemorySpoolFiles:
    """`SpoolFiles` whose files are `BytesIO`s."""

    def open(self) -> tuple[BinaryIO, Path | None]:
        return io.BytesIO(), None

    def close(self, file: BinaryIO, path: Path | None) -> None:
        file.close()


class MemoryStorage:
    """`Storage` in memory; `capacity` bytes in all, for `free_bytes`."""

    def __init__(self, capacity: int = 1 << 40) -> None:
        self.capacity = capacity
        self.blobs: dict[str, _Blob] = {}
        self._spool_files = _MemorySpoolFiles()
        self.abilities: Abilities = abilities_of(self)

    async def create(self, key: str) -> MemoryBlobWriter:
        return MemoryBlobWriter(self, key)

    async def open(self, key: str) -> MemoryBlobReader:
        blob = self.blobs.get(key)
        if blob is None:
            raise BlobNotFound(key)
        return MemoryBlobReader(blob.data)

    async def stat(self, key: str) -> BlobInfo | None:
        blob = self.blobs.get(key)
        return None if blob is None else blob.info(key)

    async def copy(self, source: str, key: str, size: int) -> None:
        blob = self.blobs.get(source)
        if blob is None:
            raise BlobNotFound(source)
        self.blobs[key] = _Blob(blob.data, blob.modified)

    async def delete(self, key: str) -> bool:
        return self.blobs.pop(key, None) is not None

    async def list(self) -> builtins.list[BlobInfo]:
        return [blob.info(key) for key, blob in self.blobs.items()]

    async def sweep_temp(self, older_than: float) -> int:
        return 0  # no temp file outlives its owner: they are garbage-collected

    def free_bytes(self) -> int:
        return max(0, self.capacity - sum(len(blob.data) for blob in self.blobs.values()))

    def new_spool(self, memory_bytes: int) -> UploadSpool:
        return UploadSpool(self._spool_files, memory_bytes)
