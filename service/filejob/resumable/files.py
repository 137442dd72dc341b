"""An upload's bytes in a local file (store.py's `UploadStore` for local storage): one file per
upload, `<folder>/<id>`, in a folder on the blobs' own filesystem, so that a finished upload
becomes its job's input by a link (storage adopts it as it adopts a multipart spool), never by
a copy.

The files have names (not O_TMPFILE): they must outlive the request, and the process, that
wrote them. Which bytes of a file count is the row's business (`received`); a request first
cuts the file back to that offset, so what an unacknowledged request left behind is dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import anyio.to_thread

from filejob.storage.local import fsync_folder
from filejob.storage.spool import UploadSpool
from filejob.storage.tmpfiles import start_writeback

if TYPE_CHECKING:
    from filejob.resumable.model import ResumableUpload

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def folder_for(storage_url: str, data_dir: Path) -> Path:
    """Where uploads in progress live: under the local storage's root (the blobs' filesystem),
    or under the data dir where blobs live elsewhere (S3: the finished upload is streamed)."""
    root = Path(storage_url.removeprefix("file://")) if storage_url.startswith("file://") else None
    return (root or data_dir) / "uploads"


def checked_id(upload_id: str) -> str:
    """`upload_id`, if it is one (ids are generated; anything path-like is refused)."""
    if not _ID.fullmatch(upload_id):
        raise ValueError(f"invalid upload id {upload_id!r}")
    return upload_id


class UploadFiles:
    max_bytes: int | None = None  # a file holds what storage's limit lets an upload be

    def __init__(self, folder: Path, *, fsync: bool) -> None:
        self.folder = folder
        self.fsync = fsync
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, upload_id: str) -> Path:
        return self.folder / checked_id(upload_id)

    def create(self, upload_id: str) -> None:
        """An empty file for a new upload (blocking); with fsync, its name is durable."""
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        if self.fsync:
            fsync_folder(self.folder)

    async def open(self, upload: ResumableUpload, offset: int) -> ChunkWriter:
        return await anyio.to_thread.run_sync(self.open_file, upload.id, offset)

    def open_file(self, upload_id: str, offset: int) -> ChunkWriter:
        """The upload's file for one request's bytes, cut back to `offset` (blocking)."""
        fd = os.open(self.path(upload_id), os.O_RDWR)
        try:
            os.ftruncate(fd, offset)
        except BaseException:
            os.close(fd)
            raise
        return ChunkWriter(fd, fsync=self.fsync)

    def remove(self, upload_id: str) -> None:
        self.path(upload_id).unlink(missing_ok=True)

    def names_older_than(self, seconds: float) -> list[str]:
        """Files not changed for `seconds` (for the sweep: files whose upload is gone)."""
        cutoff, names = time.time() - seconds, []
        for path in self.folder.iterdir():
            try:
                if path.stat().st_mtime < cutoff and _ID.fullmatch(path.name):
                    names.append(path.name)
            except FileNotFoundError:
                continue
        return names

    async def finished(
        self, upload: ResumableUpload, offset: int, sha256: hashlib._Hash | None
    ) -> FinishedLocalFile:
        assert upload.length is not None
        if sha256 is None:  # not hashed on the way by this process: read the file once
            sha256 = await anyio.to_thread.run_sync(self.sha256, upload.id)
        path = self.path(upload.id)
        spool = await anyio.to_thread.run_sync(finished_spool, path, upload.length, sha256)
        return FinishedLocalFile(self, upload.id, spool, made=False)

    async def concatenate(self, final_id: str, parts: list[tuple[str, int]]) -> FinishedLocalFile:
        part_ids = [part_id for part_id, _ in parts]
        sha256 = await anyio.to_thread.run_sync(self.concatenate_files, final_id, part_ids)
        try:
            length = sum(size for _, size in parts)
            spool = await anyio.to_thread.run_sync(
                finished_spool, self.path(final_id), length, sha256
            )
        except BaseException:
            await anyio.to_thread.run_sync(self.remove, final_id)
            raise
        return FinishedLocalFile(self, final_id, spool, made=True)

    def concatenate_files(self, upload_id: str, part_ids: list[str]) -> hashlib._Hash:
        """A new upload's file made of the parts' files, in order (blocking; a copy: several
        files cannot become one by linking); its sha256."""
        sha = hashlib.sha256()
        with open(self.path(upload_id), "xb") as target:
            for part_id in part_ids:
                with open(self.path(part_id), "rb") as part:
                    while chunk := part.read(1024 * 1024):
                        target.write(chunk)
                        sha.update(chunk)
            target.flush()
            if self.fsync:
                os.fsync(target.fileno())
        return sha

    def sha256(self, upload_id: str) -> hashlib._Hash:
        """The whole file's sha256, read from disk (blocking)."""
        sha = hashlib.sha256()
        with open(self.path(upload_id), "rb") as file:
            while chunk := file.read(1024 * 1024):
                sha.update(chunk)
        return sha


class ChunkWriter:
    """One request's writes into an upload's file, each at its position."""

    def __init__(self, fd: int, *, fsync: bool) -> None:
        self.fd = fd
        self.fsync = fsync

    def write(self, data: bytes | memoryview, position: int) -> None:
        view, start = memoryview(data), position
        while view:
            written = os.pwrite(self.fd, view, position)
            view, position = view[written:], position + written
        if self.fsync:
            # Start the disk writes while the next bytes arrive, so that `seal`'s fsync has
            # only the tail left (bench/uploads.py: without it, a 64 MiB PATCH waited for
            # all of its writeback after its last byte).
            start_writeback(self.fd, start, position - start)

    def seal(self, end: int, *, last: bool) -> None:
        """Make what was written durable (with fsync on; else the page cache keeps it)."""
        if self.fsync:
            os.fsync(self.fd)

    def acknowledged(self) -> None:
        """Nothing to drop: the file is cut back to the row's offset by the next request."""

    def close(self) -> None:
        os.close(self.fd)


class _UploadsOwnFile:
    """`SpoolFiles` for a spool over an upload's existing file: opening it gives the file and
    its name (what storage links); closing leaves the name, which the upload removes itself
    once its job's row is committed (the job's input is then a second name of the same file)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def open(self) -> tuple[BinaryIO, Path | None]:
        return open(self._path, "r+b"), self._path  # the spool closes it

    def close(self, file: BinaryIO, path: Path | None) -> None:
        file.close()


def finished_spool(path: Path, size: int, sha256: hashlib._Hash) -> UploadSpool:
    """A finished upload's file as an `UploadSpool` (blocking): what `store_file` adopts by a
    link where the backend can, and `digest_of` reads size and sha256 from without a read."""
    spool = UploadSpool(_UploadsOwnFile(path), memory_bytes=0)
    spool.rollover()  # opens the file: nothing in memory to copy, positioned at 0
    spool.size, spool.sha256 = size, sha256
    return spool


class FinishedLocalFile:
    """A finished upload's file on its way to a job (store.py's `FinishedBytes`): the job's
    input becomes a second name of it, then this name goes. `made`: the file was made for this
    attempt (a concatenation), and goes whatever the ending."""

    key = None  # not a blob yet

    def __init__(self, files: UploadFiles, upload_id: str, spool: UploadSpool, *, made: bool):
        self.spool = spool
        self._files, self._upload_id, self._made = files, upload_id, made

    async def kept(self, input_key: str | None) -> None:
        self.spool.close()
        if input_key is not None or self._made:
            await anyio.to_thread.run_sync(self._files.remove, self._upload_id)

    async def restore(self) -> None:
        self.spool.close()  # the next request cuts the file back to the row's offset
        if self._made:
            await anyio.to_thread.run_sync(self._files.remove, self._upload_id)

    async def discard(self) -> None:
        self.spool.close()
        await anyio.to_thread.run_sync(self._files.remove, self._upload_id)


class FinishedFile:
    """A finished upload as the job layer takes an upload (`jobs.incoming.IncomingFile`)."""

    def __init__(self, spool: UploadSpool, filename: str | None, content_type: str | None):
        self._spool = spool
        self._filename = filename
        self._content_type = content_type

    @property
    def file(self) -> BinaryIO:
        return self._spool  # type: ignore[return-value]

    @property
    def filename(self) -> str | None:
        return self._filename

    @property
    def content_type(self) -> str | None:
        return self._content_type

    async def seek(self, offset: int) -> None:
        self._spool.seek(offset)

    async def read(self, size: int = -1) -> bytes:
        return await anyio.to_thread.run_sync(self._spool.read, size)

    async def release(self) -> None:
        self._spool.close()
