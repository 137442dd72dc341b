"""Run processors over real files in tmp_path, the way the runner does."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from pydantic import BaseModel

from filejob.processors.base import Output, Processor, ProcessorContext


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


@pytest.fixture
def make_job(tmp_path: Path) -> Iterator[MakeJob]:
    """make_job(data_or_path, filename=..., content_type=..., cancel_after_reports=None)."""
    jobs: list[Job] = []

    def make(
        data: bytes | Path,
        filename: str = "input.bin",
        content_type: str = "application/octet-stream",
        cancel_after_reports: int | None = None,
    ) -> Job:
        n = len(jobs)
        if isinstance(data, Path):
            input_path = data
        else:
            input_path = tmp_path / f"input-{n}"
            input_path.write_bytes(data)
        output_path = tmp_path / f"output-{n}"
        job = Job(input_path, output_path, filename, content_type, cancel_after_reports)
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        job.close()
