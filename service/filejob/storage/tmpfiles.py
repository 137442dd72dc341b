"""Temporary files that become stored files by being *named*, never copied.

Preferred: an unnamed `O_TMPFILE` (vanishes by itself if the process dies) that is given a
name with `linkat`. Kernels differ in how they allow that: `linkat(fd, "", AT_EMPTY_PATH)` (needs
CAP_DAC_READ_SEARCH before Linux 6.10) or via `/proc/self/fd/N` (refused in some sandboxes), so
which one works is probed once, at start-up. Where neither does, files are named temp files
(`*.part`) that the sweep removes if a crash leaves them behind.

Every process that makes temp files (API servers, workers) sweeps the folder, and several may
share it (one data dir on one machine). A file is removed only when it is older than the grace
*and* no process holds it: each temp file is opened under a shared `flock`, which the kernel
drops when the last descriptor closes, SIGKILL included, and the sweep removes only what it can
lock exclusively. The grace covers the instant between a file's creation and its lock, and
writers that predate the lock.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol


class HasFileno(Protocol):
    """An open file, as far as linking it needs: its descriptor."""

    def fileno(self) -> int: ...


_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _link_empty_path(fd: int, target: Path) -> None:
    if _libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(target), _AT_EMPTY_PATH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), str(target))


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start (not wait for) writeback of a byte range's dirty pages: sync_file_range(2). Spreads
    a large file's disk writes over the time it is received instead of all at the final fsync.
    Advisory: where the call is unavailable or fails, the fsync at commit does all the work."""
    _libc.sync_file_range(
        fd, ctypes.c_longlong(offset), ctypes.c_longlong(length), _SYNC_FILE_RANGE_WRITE
    )


def _link_proc(fd: int, target: Path) -> None:
    os.link(f"/proc/self/fd/{fd}", target, follow_symlinks=True)


def _held(fd: int) -> int:
    """`fd` with a shared lock on its file, for as long as any descriptor of it is open."""
    # A filesystem without locks leaves the file to the grace alone, as before locks were used.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _remove_unless_held(path: Path) -> bool:
    """Unlink `path` if no process holds it (see the module doc); True if it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except PermissionError:
        return False  # another user's process made it: that one sweeps it
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        path.unlink()  # a symlink: no writer here makes one
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer, in this process or another
        except OSError:
            pass  # a filesystem without locks: the grace alone decides
        path.unlink()
        return True
    finally:
        os.close(fd)


class TempFiles:
    """Makes temp files in `directory` and links them to a final name on the same filesystem."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._link_unnamed = self._probe()

    @property
    def unnamed(self) -> bool:
        return self._link_unnamed is not None

    def _probe(self) -> Callable[[int, Path], None] | None:
        for method in (_link_empty_path, _link_proc):
            try:
                fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600)
            except (AttributeError, OSError):
                return None  # no O_TMPFILE on this filesystem
            probe = self.directory / f".probe-{os.getpid()}-{id(method)}"
            try:
                method(fd, probe)
            except OSError:
                continue
            else:
                probe.unlink()
                return method
            finally:
                os.close(fd)
        return None

    def open(self) -> tuple[BinaryIO, Path | None]:
        """A new read/write temp file, and its path if it has one (named mode)."""
        if self._link_unnamed is not None:
            # Held too: once linked to a `.staged` name it is visible to other sweeps.
            fd = _held(os.open(self.directory, os.O_TMPFILE | os.O_RDWR, 0o600))
            return os.fdopen(fd, "w+b"), None
        return self.open_named()

    def sweep(self, older_than: float, spare: set[Path]) -> int:
        """Remove temp files older than `older_than` seconds that no process holds, except
        `spare` (this process's live writers); returns the count. Only named ones can be left
        behind by a crash (unnamed ones vanish with their process)."""
        cutoff, removed = time.time() - older_than, 0
        for path in self.directory.iterdir():
            if path in spare:
                continue
            try:
                if path.stat().st_mtime < cutoff and _remove_unless_held(path):
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def open_named(self) -> tuple[BinaryIO, Path]:
        """A new temp file with a path (for a writer in another process)."""
        fd, name = tempfile.mkstemp(dir=self.directory, suffix=".part")
        return os.fdopen(_held(fd), "w+b"), Path(name)

    def link(self, file: HasFileno, named: Path | None, target: Path) -> None:
        """Give the temp file the (new, not yet existing) name `target`."""
        if named is not None:
            os.link(named, target)
        else:
            assert self._link_unnamed is not None
            self._link_unnamed(file.fileno(), target)
