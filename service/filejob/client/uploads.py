"""An upload's body as httpx reads it: counted for progress bars, and stoppable mid-body."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from filejob.client.errors import Aborted

Progress = Callable[[int], None]  # called with the number of bytes just moved


class StoppableReader:
    """A file that reports how much has been read from it (httpx reads an upload in chunks)
    and raises `Aborted` at the next chunk once `abort` is set. The exception leaves httpx in
    the middle of the body: the connection is closed, and the server drops what it got."""

    def __init__(
        self, file: BinaryIO, progress: Progress | None, abort: threading.Event | None
    ) -> None:
        self.file = file
        self.progress = progress
        self.abort = abort

    def read(self, size: int = -1) -> bytes:
        if self.abort is not None and self.abort.is_set():
            raise Aborted(f"the upload of {getattr(self.file, 'name', 'a file')} was aborted")
        data = self.file.read(size)
        if self.progress is not None and data:
            self.progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)
