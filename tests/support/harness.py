"""Processors run directly over real files, the way the runner runs them (a write-only,
unseekable output it owns), and reference results computed that way."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel

from filejob.processors.base import Output, Processor, ProcessorContext
from filejob.processors.registry import ProcessorRegistry


class WriteOnlyOutput:
    """Stands in for the runner's output stream: write-only, not seekable, close is a no-op."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._written = 0
        self.close_calls = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = self._file.write(data)
        self._written += n
        return n

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self._written

    def close(self) -> None:
        # The runner owns the stream; recorded so tests can tell a processor tried.
        self.close_calls += 1

    @property
    def closed(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("output stream is not seekable")

    def truncate(self, *args: object) -> int:
        raise io.UnsupportedOperation("output stream is not seekable")

    def finish(self) -> None:
        self._file.close()


class Job:
    """One processor run: the context plus what the test wants to look at afterwards."""

    def __init__(
        self,
        input_path: Path,
        output_path: Path,
        filename: str,
        content_type: str,
        cancel_after_reports: int | None,
    ) -> None:
        self.input_path = input_path
        self.output_path = output_path
        self.cancel = threading.Event()
        self.progress: list[float] = []
        self._cancel_after = cancel_after_reports
        self.input: BinaryIO = input_path.open("rb")
        self.output = WriteOnlyOutput(output_path)
        self.ctx = ProcessorContext(
            input=self.input,
            input_size=input_path.stat().st_size,
            input_filename=filename,
            input_content_type=content_type,
            output=self.output,  # type: ignore[arg-type]
            cancel_event=self.cancel,
            on_progress=self._on_progress,
        )

    def _on_progress(self, fraction: float) -> None:
        self.progress.append(fraction)
        if self._cancel_after is not None and len(self.progress) >= self._cancel_after:
            self.cancel.set()

    def run(self, processor: Processor, **params: Any) -> Output:
        """Validate params as the API would, run, and check the streams were left alone."""
        model: BaseModel = processor.Params.model_validate(params)
        try:
            return processor.run(self.ctx, model)
        finally:
            assert not self.input.closed, "processor closed ctx.input"
            assert self.output.close_calls == 0, "processor closed ctx.output"

    def result(self) -> bytes:
        self.output.finish()
        return self.output_path.read_bytes()

    def close(self) -> None:
        self.input.close()
        self.output.finish()


MakeJob = Callable[..., Job]


def reference_sha256(
    registry: ProcessorRegistry, name: str, params: dict[str, Any], data: bytes
) -> str:
    """The sha256 of what processor `name` makes of `data`, run here in this process."""
    processor = registry.get(name)
    assert processor is not None

    class Out(io.BytesIO):
        def close(self) -> None:  # like the runner's output: processors may close it
            pass

    out = Out()
    ctx = ProcessorContext(
        input=io.BytesIO(data),
        input_size=len(data),
        input_filename="input",
        input_content_type="application/octet-stream",
        output=out,
    )
    processor.run(ctx, processor.Params.model_validate(params))
    return hashlib.sha256(out.getvalue()).hexdigest()
