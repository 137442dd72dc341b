"""The processor contract: what a processor declares and what it is handed when it runs.

A processor is a class with a few declarations and a synchronous `run()`. The runner calls
`run()` in a worker thread (never on the event loop), with the job's input open for reading and
an output stream to write the result to.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

CHUNK_SIZE = 1024 * 1024


class NoParams(BaseModel):
    """Params model for processors that take none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Output:
    """What a processor says about the result it wrote."""

    filename: str
    content_type: str


class ProcessingError(Exception):
    """The job cannot succeed with this input: it fails at once with `code` and the message."""

    def __init__(self, message: str, code: str = "processing_failed") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryableError(ProcessingError):
    """A transient failure (a remote service down, a lock held): the job is tried again later,
    up to its `max_attempts`, and fails with `code` once they are used up."""

    def __init__(self, message: str, code: str = "transient_error") -> None:
        super().__init__(message, code)


class Cancelled(Exception):
    """Raised inside `run()` by `ProcessorContext.check_cancelled()` once the job is cancelled."""


class ProcessorContext:
    """Everything a running processor may touch.

    `input` is a seekable binary file positioned at 0; `output` accepts `write()` only (it is
    hashed as it is written, so it cannot seek). Call `report()` with a fraction in 0..1 as work
    advances and `check_cancelled()` at least every few hundred milliseconds of work.
    """

    def __init__(
        self,
        *,
        input: BinaryIO,
        input_size: int,
        input_filename: str,
        input_content_type: str,
        output: BinaryIO,
        cancel_event: threading.Event | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        self.input = input
        self.input_size = input_size
        self.input_filename = input_filename
        self.input_content_type = input_content_type
        self.output = output
        self._cancel_event = cancel_event or threading.Event()
        self._on_progress = on_progress

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self._cancel_event.is_set():
            raise Cancelled

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The input from its current position in chunks, reporting progress and checking for
        cancellation at each one: the loop most streaming processors want."""
        total = max(self.input_size, 1)
        done = self.input.tell()
        self.check_cancelled()
        while chunk := self.input.read(size):
            done += len(chunk)
            yield chunk
            self.report(done / total)
            self.check_cancelled()

    def report(self, fraction: float) -> None:
        """Record progress; cheap enough to call per chunk (persistence is throttled elsewhere)."""
        if self._on_progress is not None:
            self._on_progress(min(1.0, max(0.0, float(fraction))))


P = TypeVar("P", bound=BaseModel)


class Processor(ABC, Generic[P]):
    """A named transformation from one input file to one result file, taking params `P` (a
    pydantic model, declared again as the class attribute `Params` for validation).

    Subclasses set the class attributes and implement `run()`. `content_types` lists the input
    types accepted, as exact types or `type/*` / `*/*` patterns, judged from the file's first
    bytes (see `filejob.processors.sniff`).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]] = ("*/*",)
    Params: ClassVar[type[BaseModel]] = NoParams
    timeout: ClassVar[float] = 600.0
    """Seconds one attempt may take unless the job asks otherwise."""
    isolation: ClassVar[Literal["thread", "process"]] = "thread"
    """"thread", or "process" for CPU-heavy work: a child process that a cancel or timeout can
    terminate (its `run()` must then work on the files it is given, as every processor does)."""

    def accepts(self, content_type: str) -> bool:
        major = content_type.split("/", 1)[0]
        return any(pattern in ("*/*", content_type, f"{major}/*") for pattern in self.content_types)

    @abstractmethod
    def run(self, ctx: ProcessorContext, params: P) -> Output:
        """Read `ctx.input`, write the result to `ctx.output`, return its name and type.

        Raise `ProcessingError` for bad input (the job fails with its code), let `Cancelled`
        from `ctx.check_cancelled()` propagate, and never read a large input whole.
        """
