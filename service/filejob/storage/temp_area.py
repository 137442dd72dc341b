"""One backend's local temp folder: the spools, writers' temp files and local copies it holds.

Both backends keep their in-flight bytes here (`<root>/tmp` or `<data_dir>/tmp`), so the
bookkeeping lives once: which temp files this process still uses (the sweep spares them),
removing them when done, and the sweep itself. How a temp file becomes a stored file without a
copy is `tmpfiles`' business.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread

from filejob.storage.ingest import copy_file
from filejob.storage.spool import UploadSpool
from filejob.storage.tmpfiles import HasFileno, TempFiles


class TempArea:
    """Temp files in `directory`; those this process still uses are in `in_use`, which the
    sweep spares whatever their age."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = TempFiles(directory)  # probes how temp files can be linked
        self.in_use: set[Path] = set()

    def open(self) -> tuple[BinaryIO, Path | None]:
        """A new temp file, unnamed where the filesystem allows; its path if it has one.
        Give it back with `close`."""
        file, path = self.files.open()
        if path is not None:
            self.in_use.add(path)
        return file, path

    def open_named(self) -> tuple[BinaryIO, Path]:
        """A new temp file with a path (for another process to fill); give it back with
        `close`."""
        file, path = self.files.open_named()
        self.in_use.add(path)
        return file, path

    def close(self, file: BinaryIO, path: Path | None) -> None:
        """Close a file from `open`/`open_named` and remove its name, if any (blocking)."""
        if not file.closed:
            file.close()
        if path is not None:
            path.unlink(missing_ok=True)
            self.in_use.discard(path)

    def new_spool(self, memory_bytes: int, *, early_writeback: bool) -> UploadSpool:
        """A spool that keeps up to `memory_bytes` in memory, then rolls over to a temp file
        here (`early_writeback`: start disk writes as it fills, for a commit that fsyncs)."""
        return UploadSpool(self, memory_bytes, early_writeback=early_writeback)

    @contextmanager
    def staged(self, file: HasFileno, named: Path | None, name: str) -> Iterator[Path]:
        """`file` (unnamed, or the temp path `named`) linked to `<directory>/<name>`, spared by
        the sweep until the block ends; the caller moves it away meanwhile."""
        staged = self.directory / name
        self.in_use.add(staged)  # a sweep in between must leave it
        try:
            self.files.link(file, named, staged)
            yield staged
        finally:
            self.in_use.discard(staged)

    @asynccontextmanager
    async def local_copy(self, source: BinaryIO) -> AsyncIterator[Path]:
        """`source`'s whole content in a named temp file, removed when the block ends."""
        file, path = self.open_named()
        try:
            await anyio.to_thread.run_sync(copy_file, source, file)
            yield path
        finally:
            self.close(file, path)  # not in a thread: a cancelled task must still clean up

    def sweep(self, older_than: float) -> int:
        """Remove abandoned temp files older than `older_than` seconds (blocking); the count."""
        return self.files.sweep(older_than, self.in_use)

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.directory).free
