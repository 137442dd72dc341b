"""The stream a processor writes its result to."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO, cast


class HashingOutput(io.RawIOBase):
    """The processor's output stream: write-only, hashed and counted on the way to storage."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def as_binary_io(self) -> BinaryIO:
        """This stream typed as the `BinaryIO` a `ProcessorContext` takes (it has what a
        processor may call on its output: write, tell, flush, close)."""
        return cast(BinaryIO, self)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        """Processors (and libraries they use) may close it; the runner closes the target."""
