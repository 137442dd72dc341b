"""The processor contract: what a processor declares and what it is handed when it runs.

A processor is a class with a few declarations and a synchronous `run()`. The runner calls
`run()` in a worker thread (never on the event loop), with the job's input open for reading and
an output stream to write the result to; it may write more results with `ctx.emit()`.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

CHUNK_SIZE = 1024 * 1024
MAX_OUTPUTS = 1000
"""Outputs one attempt may write in all (`ctx.output` and every `ctx.emit`)."""
_CONTENT_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,62}"
)

# What opens an emitted output's stream: the runner's (a file of its own per output).
Emitter = Callable[[str, str], BinaryIO]


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
    hashed as it is written, so it cannot seek). `emit()` opens another output, as many as the
    processor makes (up to `MAX_OUTPUTS` in all). Call `report()` with a fraction in 0..1 as
    work advances and `check_cancelled()` at least every few hundred milliseconds of work.
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
        emitter: Emitter | None = None,
    ) -> None:
        self.input = input
        self.input_size = input_size
        self.input_filename = input_filename
        self.input_content_type = input_content_type
        self.output = output
        self._cancel_event = cancel_event or threading.Event()
        self._on_progress = on_progress
        self._emitter = emitter

    def emit(self, filename: str, content_type: str) -> BinaryIO:
        """Open another result named `filename` (cleaned before any client sees it), of type
        `content_type` (`type/subtype`, no parameters): a write-only stream, hashed as it is
        written, usable as a context manager. The runner closes every output once `run()`
        returns, so closing it is optional. Results are listed in the order they were opened,
        after `ctx.output`'s if `run()` returns an `Output`; none is kept unless the attempt
        succeeds, and they are published together."""
        if not _CONTENT_TYPE.fullmatch(content_type):
            raise ValueError(f"not a content type: {content_type!r}")
        if self._emitter is None:
            raise RuntimeError("this context was made without an emitter: it has one output")
        self.check_cancelled()
        return self._emitter(filename, content_type)

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
    """A named transformation from one input file to one or more result files, taking params
    `P` (a pydantic model, declared again as the class attribute `Params` for validation).

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
    def run(self, ctx: ProcessorContext, params: P) -> Output | None:
        """Read `ctx.input`, write the result to `ctx.output`, return its name and type; write
        further results, if any, to streams from `ctx.emit()`. A processor whose results are
        all emitted returns None (`ctx.output` is then dropped): it must emit at least one.

        Raise `ProcessingError` for bad input (the job fails with its code), let `Cancelled`
        from `ctx.check_cancelled()` propagate, and never read a large input whole.
        """
