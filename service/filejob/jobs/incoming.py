"""What the job layer needs of an uploaded file: the open bytes, what the client said about
them, and a way to hand them back. The HTTP layer's `OwnedUpload` (api/uploads/owned.py) is
one; tests and other
front doors (tus, a CLI import) can bring their own."""

from __future__ import annotations

from typing import BinaryIO, Protocol


class IncomingFile(Protocol):
    """An open upload whose owner is now the job: read it, then `release()` it exactly once
    on every outcome (releasing twice is harmless)."""

    @property
    def file(self) -> BinaryIO:
        """The bytes, seekable; read them in a thread (blocking I/O)."""
        ...

    @property
    def filename(self) -> str | None:
        """The client's name for it: untrusted, for display only."""
        ...

    @property
    def content_type(self) -> str | None:
        """The client's declared type: untrusted, a hint for sniffing."""
        ...

    async def seek(self, offset: int) -> None: ...

    async def read(self, size: int = -1) -> bytes: ...

    async def release(self) -> None:
        """Close the file for real."""
        ...
