"""An UploadFile that the job owns, not the request.

FastAPI closes every uploaded file when the request's work ends (0.106-0.117: before the
background tasks even ran; since then, right after them). A job that waits in a queue, or
outlives the request for any other reason, would find its input closed. `OwnedUpload` takes the
open file over: the framework's end-of-request `close()` becomes a no-op, on the wrapper and on
the request's original object alike, and the owner closes it for real with `release()`.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile


class _RequestHandle:
    """What the request's UploadFile keeps after the hand-over: the file, minus closing it."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def close(self) -> None:
        """The request is done with the file; its new owner decides when it is closed."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class OwnedUpload(UploadFile):
    """The request's upload, handed over to a new owner who must call `release()` once."""

    def __init__(self, upload: UploadFile) -> None:
        super().__init__(
            upload.file, size=upload.size, filename=upload.filename, headers=upload.headers
        )
        upload.file = _RequestHandle(upload.file)  # type: ignore[assignment]
        self._released = False

    @classmethod
    def take(cls, upload: UploadFile) -> OwnedUpload:
        return upload if isinstance(upload, OwnedUpload) else cls(upload)

    async def close(self) -> None:
        """Called by FastAPI/Starlette when the request ends: deliberately does nothing."""

    @property
    def released(self) -> bool:
        return self._released

    async def release(self) -> None:
        """Close the file for real (idempotent). The owner calls this on every outcome."""
        if self._released:
            return
        self._released = True
        if self._in_memory:  # nothing to wait for: no round trip to a thread
            self.file.close()
        else:
            await run_in_threadpool(self.file.close)
