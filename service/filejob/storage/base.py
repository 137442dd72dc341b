"""The storage contract: blobs addressed by generated keys (never by client filenames).

A small core every backend implements (`Storage`), plus optional abilities a backend opts
into (`AdoptsLocalFiles`, ...), probed once when it is made into its `Abilities`, as tusd does
with its DataStore extensions: callers read the record, they do not probe.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from filejob.storage.spool import UploadSpool


class BlobNotFound(Exception):
    """The key names no stored blob (never stored, or deleted)."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime


class BlobReader(Protocol):
    """An open blob: stays readable to the end even if the key is deleted meanwhile."""

    size: int
    file: BinaryIO  # seekable, positioned at 0 when opened

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (blocking; call from a worker thread)."""
        ...

    def close(self) -> None: ...


class BlobWriter(Protocol):
    """A blob being written: invisible under its key until `commit()`; `discard()` leaves
    nothing."""

    file: BinaryIO  # write-only from the caller's point of view

    async def commit(self) -> BlobInfo:
        """Publish atomically under the key (replacing any older blob there)."""
        ...

    async def discard(self) -> None: ...


class Storage(Protocol):
    """Where inputs and results live."""

    async def create(self, key: str) -> BlobWriter:
        """Start writing a new blob for `key`."""
        ...

    async def open(self, key: str) -> BlobReader:
        """Open a stored blob for reading; raises `BlobNotFound`."""
        ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    async def copy(self, source: str, key: str, size: int) -> None:
        """The blob `source` (of `size` bytes) also under `key`, as a blob of its own (deleting
        either leaves the other), without passing its bytes through this process where the
        backend can; raises `BlobNotFound` if `source` is gone."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the blob; True if it existed. Open readers keep reading."""
        ...

    async def list(self) -> list[BlobInfo]:
        """Every stored blob (for the orphan sweep)."""
        ...

    async def sweep_temp(self, older_than: float) -> int:
        """Remove abandoned temporary files older than `older_than` seconds; returns the count."""
        ...

    def free_bytes(self) -> int:
        """Bytes free where uploads land first (for the uploads' free-space check and readiness)."""
        ...

    def new_spool(self, memory_bytes: int) -> UploadSpool:
        """A spool for one upload, its first `memory_bytes` in memory, the rest where this
        backend can store it from cheaply."""
        ...

    @property
    def abilities(self) -> Abilities:
        """What this backend can do besides this protocol (`abilities_of`, once, when made)."""
        ...


class NamedBlobWriter(BlobWriter, Protocol):
    """A writer whose temp file has a path, so that another process can fill it."""

    path: Path


@runtime_checkable
class NamedWriters(Protocol):
    """A backend whose writers can be local files with a path, for another process to fill."""

    async def create_named(self, key: str) -> NamedBlobWriter: ...


@runtime_checkable
class LocalFiles(NamedWriters, Protocol):
    """A backend whose blobs are local files another process can open by path."""

    def local_path(self, key: str) -> Path: ...


@runtime_checkable
class StagesLocalCopies(NamedWriters, Protocol):
    """A remote backend that can put a blob's content in a local file for another process."""

    def local_copy(self, source: BinaryIO) -> AbstractAsyncContextManager[Path]:
        """A local file holding `source`'s content (an open blob or upload), removed when the
        context exits."""
        ...


@dataclass(frozen=True)
class DownloadHeaders:
    """Headers a direct download asks the store to answer with, in place of the blob's own
    (S3 signs them into the URL as its `response-*` overrides)."""

    content_type: str
    content_disposition: str
    cache_control: str


@runtime_checkable
class PresignsDownloads(Protocol):
    """A backend that can hand out a time-limited URL a client downloads a blob from directly."""

    async def presigned_get(self, key: str, expires_in: float, headers: DownloadHeaders) -> str:
        """A URL for GET of `key`, valid `expires_in` seconds, answered with `headers`."""
        ...


@runtime_checkable
class StreamsLocalFiles(Protocol):
    """A backend that uploads an already-written local file as a blob, streaming it."""

    async def put_file(self, file: BinaryIO, key: str) -> None: ...


@runtime_checkable
class AdoptsLocalFiles(Protocol):
    """A backend that can take over an already-written local file without copying it."""

    async def adopt(self, file: BinaryIO, key: str) -> bool:
        """Make `file`'s current content the blob `key` by linking it; False if it cannot
        (another filesystem, not a real file), in which case the caller copies instead."""
        ...


@dataclass(frozen=True)
class Abilities:
    """A backend's optional abilities, probed once: each is the backend itself, typed as
    that ability, or None where it lacks it."""

    local_files: LocalFiles | None
    stages_local_copies: StagesLocalCopies | None
    presigns_downloads: PresignsDownloads | None
    adopts_local_files: AdoptsLocalFiles | None
    streams_local_files: StreamsLocalFiles | None

    def names(self) -> list[str]:
        """The abilities present, in words (for the start-up log)."""
        named = (
            ("paths for child processes", self.local_files),
            ("local copies for child processes", self.stages_local_copies),
            ("presigned downloads", self.presigns_downloads),
            ("adopts spooled uploads", self.adopts_local_files),
            ("streams local files", self.streams_local_files),
        )
        return [name for name, ability in named if ability is not None]


def abilities_of(storage: object) -> Abilities:
    """Probe `storage` for each optional ability (a backend calls this once, when made)."""
    return Abilities(
        local_files=storage if isinstance(storage, LocalFiles) else None,
        stages_local_copies=storage if isinstance(storage, StagesLocalCopies) else None,
        presigns_downloads=storage if isinstance(storage, PresignsDownloads) else None,
        adopts_local_files=storage if isinstance(storage, AdoptsLocalFiles) else None,
        streams_local_files=storage if isinstance(storage, StreamsLocalFiles) else None,
    )
