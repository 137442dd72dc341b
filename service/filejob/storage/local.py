"""Blobs as files under one root folder: `<root>/blobs/<key sharded>` and `<root>/tmp/`.

Writers fill an unnamed file in `tmp/` and link it into place at commit, so a crash never
leaves a half-written blob under a key, and readers hold an open descriptor, so deleting a
blob never breaks a download already in flight.
"""

from __future__ import annotations

import builtins
import errno
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from filejob.storage.base import Abilities, BlobInfo, BlobNotFound, abilities_of
from filejob.storage.spool import UploadSpool
from filejob.storage.temp_area import TempArea
from filejob.storage.tmpfiles import HasFileno


class LocalBlobReader:
    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self.file.fileno(), size, offset)

    def close(self) -> None:
        self.file.close()


class LocalBlobWriter:
    def __init__(self, storage: LocalStorage, key: str, *, named: bool = False) -> None:
        self._storage = storage
        self._key = key
        if named:
            self.file, self.path = storage.temp.open_named()
            self._named: Path | None = self.path
        else:
            self.file, self._named = storage.temp.open()

    async def commit(self) -> BlobInfo:
        return await anyio.to_thread.run_sync(self._commit)

    def _commit(self) -> BlobInfo:
        self.file.flush()
        try:
            self._storage.link_into_place(self.file, self._named, self._key)
            st = os.fstat(self.file.fileno())  # the linked inode: no path lookup
        finally:
            self._close()
        return BlobInfo(self._key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    async def discard(self) -> None:
        await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self._storage.temp.close(self.file, self._named)


class LocalStorage:
    """`Storage` + `AdoptsLocalFiles` on a local folder."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.fsync = fsync
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        # Folders known to exist, their names on disk (fsynced in their parent, with fsync);
        # only ever grows (no folder is removed), to a few thousand shard folders.
        self._durable_folders: set[Path] = set()
        self.temp = TempArea(root / "tmp")
        self.abilities: Abilities = abilities_of(self)

    def path_for(self, key: str) -> Path:
        # Keys are generated ("inputs/<id>"); shard by the id's first two characters so that
        # no folder grows to millions of entries. Refuse anything that could escape the root.
        prefix, _, name = key.partition("/")
        if not prefix or not name or "/" in name or name.startswith(".") or ".." in key:
            raise ValueError(f"invalid storage key {key!r}")
        return self.blob_dir / prefix / name[:2] / name

    def key_for(self, path: Path) -> str:
        rel = path.relative_to(self.blob_dir)
        return f"{rel.parts[0]}/{rel.name}"

    def new_spool(self, memory_bytes: int) -> UploadSpool:
        return self.temp.new_spool(memory_bytes, early_writeback=self.fsync)

    # -- core -----------------------------------------------------------------------------

    async def create(self, key: str) -> LocalBlobWriter:
        # On the event loop: opening an unnamed temp file is one quick syscall (as a spool's
        # rollover is), cheaper than the round trip to a worker thread it used to take.
        self.path_for(key)  # validate early
        return LocalBlobWriter(self, key)

    async def create_named(self, key: str) -> LocalBlobWriter:
        self.path_for(key)
        return await anyio.to_thread.run_sync(lambda: LocalBlobWriter(self, key, named=True))

    def local_path(self, key: str) -> Path:
        return self.path_for(key)

    async def open(self, key: str) -> LocalBlobReader:
        return await anyio.to_thread.run_sync(self._open, key)

    def _open(self, key: str) -> LocalBlobReader:
        try:
            file = open(self.path_for(key), "rb")  # noqa: SIM115 - the reader owns it
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return LocalBlobReader(file, os.fstat(file.fileno()).st_size)

    async def stat(self, key: str) -> BlobInfo | None:
        return await anyio.to_thread.run_sync(self.stat_sync, key)

    def stat_sync(self, key: str) -> BlobInfo | None:
        try:
            st = self.path_for(key).stat()
        except FileNotFoundError:
            return None
        return BlobInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    async def copy(self, source: str, key: str, size: int) -> None:
        await anyio.to_thread.run_sync(self._copy, source, key)

    def _copy(self, source: str, key: str) -> None:
        """A second name of the same file (blobs are never written in place, so sharing the
        bytes is safe), put in place as any blob is."""
        try:
            file = open(self.path_for(source), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise BlobNotFound(source) from None
        with file:
            self.link_into_place(file, self.path_for(source), key)
        # A second name of an old file looks old: the orphan sweep's grace, which spares a
        # blob whose row may not be committed yet, goes by the time it was named.
        os.utime(self.path_for(key))

    async def delete(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self._delete, key)

    def _delete(self, key: str) -> bool:
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            return False
        return True

    async def list(self) -> builtins.list[BlobInfo]:
        return await anyio.to_thread.run_sync(self._list)

    def _list(self) -> builtins.list[BlobInfo]:
        found = []
        for path in self.blob_dir.glob("*/*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append(
                BlobInfo(self.key_for(path), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
            )
        return found

    async def sweep_temp(self, older_than: float) -> int:
        return await anyio.to_thread.run_sync(self.temp.sweep, older_than)

    def free_bytes(self) -> int:
        """Bytes available to us under the root (one statvfs call)."""
        return shutil.disk_usage(self.root).free

    # -- adoption -------------------------------------------------------------------------

    async def adopt(self, file: BinaryIO, key: str) -> bool:
        if not isinstance(file, UploadSpool) or not file.rolled:
            return False
        return await anyio.to_thread.run_sync(self._adopt, file, key)

    def _adopt(self, spool: UploadSpool, key: str) -> bool:
        spool.flush()
        try:
            self.link_into_place(spool, spool.named_path, key)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP):
                return False
            raise
        return True

    # -- shared by writers and adoption -----------------------------------------------------

    def link_into_place(self, file: HasFileno, named: Path | None, key: str) -> None:
        """Give `file` (unnamed, or the temp path `named`) the name of `key`, atomically: the
        name appears with the whole content or not at all, and (with fsync) stays across a
        power cut, with the folders that hold it."""
        if self.fsync:
            os.fsync(file.fileno())
        target = self.path_for(key)
        folders = self._folders_of(target)
        try:
            # One step, straight to the final name: `linkat` never replaces, so a half-done
            # link cannot exist, and a crash before it leaves only the temp file.
            self.temp.files.link(file, named, target)
        except FileExistsError:
            self._replace(file, named, target)
        if self.fsync:
            fsync_folder(target.parent)  # the new name
        # Each folder's own name, once per process; outermost first, so that a folder is
        # marked durable only once every folder above it is (another upload into it skips
        # them all).
        for folder in reversed(folders):
            if self.fsync:
                fsync_folder(folder.parent)
            self._durable_folders.add(folder)

    def _folders_of(self, target: Path) -> builtins.list[Path]:
        """Make `target`'s folder if it is missing; the folders up to the blob folder whose
        own names this process has not yet made durable (the shard folders are shared, and
        whoever made one may not have synced its parent yet)."""
        folder = target.parent
        if folder in self._durable_folders:
            return []
        folder.mkdir(parents=True, exist_ok=True)
        chain = [folder, *folder.parents]
        chain = chain[: chain.index(self.blob_dir) + 1]
        return [path for path in chain if path not in self._durable_folders]

    def _replace(self, file: HasFileno, named: Path | None, target: Path) -> None:
        """Link `file` over an existing blob: staged under a temp name (same filesystem),
        then renamed into place, atomically. A crash in between leaves a temp file that the
        sweep removes, never a stray name among the blobs."""
        name = f"{target.name}.{os.getpid()}.{time.monotonic_ns()}.staged"
        with self.temp.staged(file, named, name) as staged:
            os.replace(staged, target)


def fsync_folder(folder: Path) -> None:
    """Make `folder`'s entries (a file created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
