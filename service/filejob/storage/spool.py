"""Where an upload's bytes land while the request is parsed.

Like `tempfile.SpooledTemporaryFile` (the first bytes in memory, then a file), with two
differences that make each uploaded byte hit the disk once: the file is an unnamed `O_TMPFILE`
opened *without* `O_EXCL` in the storage's own temp folder (see `tmpfiles`), so storage can later
give it a name with `linkat` (Python's TemporaryFile sets O_EXCL, which forbids exactly that);
and the bytes
are hashed as they arrive, so nobody re-reads them to learn the sha256. An unnamed file that is
never linked disappears when it is closed or the process dies: a failed upload leaves nothing.
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import BinaryIO, Protocol

from filejob.storage.tmpfiles import start_writeback


class SpoolFiles(Protocol):
    """Where a spool rolls over to: the backend's `TempArea` (or memory, for `MemoryStorage`)."""

    def open(self) -> tuple[BinaryIO, Path | None]:
        """A new read/write file, and its path if it has one."""
        ...

    def close(self, file: BinaryIO, path: Path | None) -> None:
        """Close a file from `open` and remove its path, if any."""
        ...


class UploadSpool(io.RawIOBase):
    """A seekable binary file for one uploaded part; see the module doc."""

    def __init__(
        self, temp_files: SpoolFiles, memory_bytes: int, *, early_writeback: bool = False
    ) -> None:
        super().__init__()
        self._temp_files = temp_files
        self._early_writeback = early_writeback
        # Hashing and writeback run in a worker thread while the request is still being parsed;
        # a parse error closes the spool from the event loop meanwhile.
        self._lock = threading.Lock()
        self._max_size = memory_bytes  # read by Starlette's UploadFile to decide on threads
        self._rolled = False
        self._file: BinaryIO = io.BytesIO()
        self.named_path: Path | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0

    def rollover(self) -> None:
        if self._rolled:
            return
        disk, path = self._temp_files.open()
        memory = self._file
        try:
            disk.write(memory.getbuffer())  # type: ignore[attr-defined]
            disk.seek(memory.tell())
        except BaseException:
            # The disk filled up, say: the spool stays in memory, so `close` would never see
            # this file; give it back now, or a named one stays on disk (and in use) for good.
            self._temp_files.close(disk, path)
            raise
        self._file, self.named_path = disk, path
        self._rolled = True

    @property
    def rolled(self) -> bool:
        return self._rolled

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.store(data)
        self.hash(data)
        return len(data)

    def store(self, data: bytes | memoryview) -> None:
        """Append without hashing (the caller hashes the same bytes, in order, with `hash`)."""
        with self._lock:
            if self.closed:
                raise ValueError("write to closed spool")
            if not self._rolled and self._file.tell() + len(data) > self._max_size:
                self.rollover()
            self._file.write(data)
            self.size += len(data)

    def hash(self, data: bytes | memoryview) -> None:
        """Add bytes already stored to the sha256 (hashlib drops the GIL: thread-friendly)."""
        self.sha256.update(data)

    def start_writeback(self, offset: int, length: int) -> None:
        """With early writeback on, start writing a stored range to disk now, so that the fsync
        at commit has only the tail left (does not wait for the disk)."""
        with self._lock:  # a closed spool's descriptor number may already belong to another file
            if self._early_writeback and self._rolled and not self.closed:
                self._file.flush()
                start_writeback(self._file.fileno(), offset, length)

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._file.readinto(buffer)  # type: ignore[attr-defined]

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        if not self._file.closed:  # IOBase.close() flushes after our close() closed it
            self._file.flush()

    def fileno(self) -> int:
        if not self._rolled:
            raise io.UnsupportedOperation("in-memory spool has no file descriptor")
        return self._file.fileno()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            if self._rolled:
                self._temp_files.close(self._file, self.named_path)
            else:
                self._file.close()
            super().close()
