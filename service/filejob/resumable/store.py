"""Where an upload's bytes live between its creation and its job: the contract, and the one
place that picks an implementation for a storage backend (`store_for`, at composition).

- `files.UploadFiles`: one local file per upload on the blobs' filesystem, which becomes the
  job's input by a link. For local storage (and any backend without multipart parts).
- `multipart.MultipartStore`: an S3 multipart upload per upload, parts of `PART_BYTES`
  uploaded as they fill, the bytes short of a part kept as a small object; completed
  server-side into the object the job's input is made of. No byte of it on a local disk but
  the part being filled, so any API server takes any request.

The row (`received`) says which bytes count; a store keeps at least those, durably, and
whatever a request left beyond them is overwritten by the next one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from filejob.resumable.files import UploadFiles, folder_for

if TYPE_CHECKING:
    from hashlib import _Hash

    from filejob.config import Settings
    from filejob.resumable.model import ResumableUpload
    from filejob.storage.base import Storage
    from filejob.storage.spool import UploadSpool


class ChunkSink(Protocol):
    """One request's bytes into an upload, from the request's offset on. Blocking: call its
    methods from a worker thread, in order."""

    def write(self, data: bytes | memoryview, position: int) -> None:
        """`data` at `position` (the end of what was written before)."""
        ...

    def seal(self, end: int, *, last: bool) -> None:
        """Make every byte up to `end` durable, as the acknowledgement about to be made will
        promise; `last`: they are all of the upload's bytes."""
        ...

    def acknowledged(self) -> None:
        """The row says `end` now: what only the old offset needed may go (best effort)."""
        ...

    def close(self) -> None: ...


class FinishedBytes(Protocol):
    """A finished upload's whole content on its way to a job: one of three endings follows."""

    @property
    def spool(self) -> UploadSpool:
        """The content, readable, its size and sha256 set: what storage takes."""
        ...

    @property
    def key(self) -> str | None:
        """The blob it already is in storage, if any (for the orphan sweep)."""
        ...

    async def kept(self, input_key: str | None) -> None:
        """The job whose input is `input_key` is committed (None: the upload stays, as a
        partial one does): the upload's own copy goes."""
        ...

    async def restore(self) -> None:
        """No job was made: the upload is as it was at the request's offset (retryable)."""
        ...

    async def discard(self) -> None:
        """No job was made and none ever can be: every byte goes."""
        ...


class UploadStore(Protocol):
    @property
    def folder(self) -> Path:
        """The local folder it uses (only the local store keeps uploads' bytes there)."""
        ...

    @property
    def max_bytes(self) -> int | None:
        """The most one upload can hold here (None: the configured limit alone)."""
        ...

    def create(self, upload_id: str) -> None:
        """Room for a new upload's bytes (blocking)."""
        ...

    async def open(self, upload: ResumableUpload, offset: int) -> ChunkSink:
        """A sink for one request's bytes at `offset` (the row's, which this request holds)."""
        ...

    async def finished(
        self, upload: ResumableUpload, offset: int, sha256: _Hash | None
    ) -> FinishedBytes:
        """The upload's bytes, all sealed, as one whole (`sha256`: of all of them, if known;
        else read once); `offset` is where `restore` brings it back to."""
        ...

    async def concatenate(self, final_id: str, parts: list[tuple[str, int]]) -> FinishedBytes:
        """The final upload `final_id` made of finished partial uploads ((id, length), in
        order), hashed; the parts stay as they were (`restore`)."""
        ...

    def remove(self, upload_id: str) -> None:
        """Drop an upload's bytes (blocking; none there is no error)."""
        ...

    def names_older_than(self, seconds: float) -> list[str]:
        """Ids of uploads with bytes here untouched for `seconds` (blocking; the sweep
        removes those whose upload no longer holds bytes)."""
        ...


def store_for(settings: Settings, storage: Storage) -> UploadStore:
    """Where uploads' bytes live for `storage`, decided once: in its multipart uploads where
    it offers them part by part (S3), else in local files beside its blobs."""
    from filejob.storage.s3 import S3Storage

    folder = folder_for(settings.storage_url, settings.data_dir)
    if isinstance(storage, S3Storage) and storage.parts is not None:
        from filejob.resumable.multipart import MultipartStore

        return MultipartStore(storage, storage.parts, folder)
    return UploadFiles(folder, fsync=settings.fsync)
