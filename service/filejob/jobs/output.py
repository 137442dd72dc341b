"""The streams a processor writes its results to, and what it wrote."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO, cast


@dataclass(frozen=True)
class Written:
    """One output as the processor left it: its name and type, size and sha256."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Made:
    """What a processor's work returns: `ctx.output` as `run()` described it (None: it
    returned no `Output`, its results are all emitted) and each emitted output, in the order
    they were opened."""

    output: Written | None
    emitted: list[Written]


class HashingOutput(io.RawIOBase):
    """A processor's output stream: write-only, hashed and counted on the way to storage."""

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

    def written(self, filename: str, content_type: str) -> Written:
        """What was written, flushed, under that name and type."""
        self.flush()
        return Written(filename, content_type, self.size, self.sha256.hexdigest())
