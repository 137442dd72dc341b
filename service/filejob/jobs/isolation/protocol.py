"""What the server and a worker say to each other over their pipe, and what a worker's death
means.

Server -> worker: a `JobOrder` per job. Worker -> server, per job: ("progress", fraction) any
number of times, then a `Done`: the processor's `verdict`, whether nothing the job started is
left (`clean`), and how far the worker's RSS has grown over its warm size (`growth`, bytes).
A verdict is ("ok", filename, content_type, size, sha256) or ("error", kind, code, text):
errors cross the boundary as data and are raised again on the server's side (`rebuild`)."""

from __future__ import annotations

import signal
from typing import Any, NamedTuple

from filejob.processors.base import ProcessingError, RetryableError

Verdict = tuple[Any, ...]


class JobOrder(NamedTuple):
    """One job for a worker: the processor's class (`module:qualname`), its params (JSON
    data), what it is told about its input, the input to read and the file to fill."""

    target: str
    params: dict[str, Any]
    ctx_meta: dict[str, Any]
    input_path: str
    output_path: str


class Done(NamedTuple):
    """A worker's report at the end of a job (see the module's docstring)."""

    verdict: Verdict
    clean: bool
    growth: int


class ChildDied(Exception):
    """The processor's process ended without reporting an outcome, and nobody had asked it to
    stop: an interrupted attempt, not a verdict on the input."""

    def __init__(self, exitcode: int | None) -> None:
        if exitcode is not None and exitcode < 0:
            try:
                how = f"was killed by {signal.Signals(-exitcode).name}"
            except ValueError:  # a real-time signal: no name
                how = f"was killed by signal {-exitcode}"
        else:
            how = f"died (exit code {exitcode})"
        self.message = f"The processor's process {how} before it finished."
        super().__init__(self.message)
        self.exitcode = exitcode


def error_verdict(exc: Exception) -> Verdict:
    """How the processor's `exc` crosses to the server."""
    if isinstance(exc, RetryableError):
        return ("error", "retryable", exc.code, exc.message)
    if isinstance(exc, ProcessingError):
        return ("error", "permanent", exc.code, exc.message)
    if isinstance(exc, OSError):
        # The text without its "[Errno N] ", which the server's OSError(errno, text) adds back.
        text = str(exc).removeprefix(f"[Errno {exc.errno}] ")
        return ("error", "oserror", exc.errno or 0, text)
    return ("error", "bug", "processor_error", f"{type(exc).__name__}: {exc}")


def rebuild(verdict: Verdict) -> Exception:
    """The exception an error verdict stands for, raised again on the server's side."""
    _, kind, code, text = verdict
    if kind == "retryable":
        return RetryableError(text, code)
    if kind == "permanent":
        return ProcessingError(text, code)
    if kind == "oserror":
        return OSError(code, text) if code else OSError(text)
    return RuntimeError(text)
