"""Where results are written: the one place that decides every file name of a run.

Two results of one run never share a name (the second `same.bin.gz` becomes `same (1).bin.gz`),
because names are handed out here, one at a time, under a lock, before any byte is written.
An existing file is never overwritten unless the caller said so (`--clobber`, as
`gh release download` has it): the run refuses it before uploading when the name is known up
front (`-o FILE`), and refuses that one download when the name is only known once the job has
made its result (`-o DIR/`: the processor names the result).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

# Trailing extensions kept together when a name is numbered: "a.tar.gz" -> "a (1).tar.gz".
_EXTENSIONS = re.compile(r"((?:\.[A-Za-z0-9]{1,4}){1,2})$")


class DestinationExists(Exception):
    """The file is there already, and overwriting was not asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists (--clobber overwrites it)")
        self.path = path


class NotADirectory(DestinationExists):
    """A file stands where the results' directory, or one of its parents, must be (as a
    `DestinationExists`, a command that refuses those refuses this as well)."""

    def __init__(self, path: Path) -> None:
        Exception.__init__(self, f"{path} is not a directory, and the results go into one")
        self.path = path


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest of `folder` and its parents that exists, if it is not a directory."""
    for path in (folder, *folder.parents):
        if path.exists():  # False below a file (ENOTDIR): the walk goes on up to it
            return None if path.is_dir() else path
    return None


def safe_name(filename: str) -> str:
    """The last part of a name the server gave: never a path, never empty or a dot name."""
    name = Path(filename.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else "result"


def numbered(name: str, n: int) -> str:
    """`name` with " (n)" before its extensions: "same.bin.gz", 1 -> "same (1).bin.gz"."""
    match = _EXTENSIONS.search(name)
    if match is None or match.start() == 0:  # no extension, or a dot file such as ".env"
        return f"{name} ({n})"
    return f"{name[: match.start()]} ({n}){match.group(1)}"


class Destinations:
    """The output of one run: a file (`into_dir` False: one result) or a directory whose
    results take the names the jobs give them, de-duplicated."""

    def __init__(self, output: Path, *, into_dir: bool, clobber: bool) -> None:
        self.output = output
        self.into_dir = into_dir
        self.clobber = clobber
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def check_known(self) -> None:
        """Before anything is uploaded: refuse a destination already known to exist, or a
        file where the results' directory would be made (`--clobber` does not replace a file
        with a directory)."""
        if self.into_dir:
            self._check_directory()
        elif self.output.exists() and not self.clobber:
            raise DestinationExists(self.output)

    def _check_directory(self) -> None:
        in_the_way = _file_in_the_way(self.output)
        if in_the_way is not None:
            raise NotADirectory(in_the_way)

    def claim(self, filename: str) -> Path:
        """The path the result called `filename` goes to, reserved for it alone; raises
        `DestinationExists` if that file exists (it stays reserved: no other result of the
        run takes its name either), `NotADirectory` if a file is where its directory goes."""
        if not self.into_dir:
            path = self.output
        else:
            with self._lock:
                name = base = safe_name(filename)
                n = 0
                while name in self._taken:
                    n += 1
                    name = numbered(base, n)
                self._taken.add(name)
            self._check_directory()  # a clear refusal, where mkdir would raise
            self.output.mkdir(parents=True, exist_ok=True)
            path = self.output / name
        if path.exists() and not self.clobber:
            raise DestinationExists(path)
        return path
