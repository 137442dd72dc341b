"""Running a processor in a child process that can be stopped for real.

Threads cannot be killed; processes can. A processor that declares `isolation = "process"` runs
in a child forked from a preloaded forkserver (cheap, and safe: the server is single-threaded).
The child reads the stored input by path, writes the result to a named temp file while hashing
it, and reports over a pipe: progress, then its outcome. On cancel, timeout or shutdown the
parent sends SIGTERM, then SIGKILL after `STOP_GRACE` seconds, so the work stops within that
whatever the processor is doing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from service.jobs.output import HashingOutput
from service.processors.base import (
    Cancelled,
    Output,
    ProcessingError,
    Processor,
    ProcessorContext,
    RetryableError,
)

STOP_GRACE = 2.0
_PRELOAD = [
    "service.jobs.isolation",
    "service.processors.compress",
    "service.processors.thumbnail",
    "service.processors.csv_to_parquet",
]
_context_lock = threading.Lock()
_context: Any = None


def _forkserver() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def run_isolated(
    processor: Processor,
    params: dict[str, Any],
    ctx_meta: dict[str, Any],
    input_path: str,
    output_path: str,
    stop: threading.Event,
    on_progress: Callable[[float], None],
) -> tuple[Output, int, str]:
    """Run `processor` in a child; blocking (call from a worker thread). Returns the output's
    description, size and sha256, or raises what the processor raised (`Cancelled` once
    `stop` is set and the child is gone)."""
    context = _forkserver()
    receiver, sender = context.Pipe(duplex=False)
    target = f"{type(processor).__module__}:{type(processor).__qualname__}"
    child = context.Process(
        target=_child_main,
        args=(sender, target, params, ctx_meta, input_path, output_path),
        daemon=True,
        name=f"filejob-{processor.name}",
    )
    child.start()
    sender.close()
    try:
        while True:
            if stop.is_set():
                raise Cancelled
            if receiver.poll(0.05):
                try:
                    message = receiver.recv()
                except EOFError:
                    child.join(STOP_GRACE)
                    raise _crashed(child.exitcode) from None
                if message[0] == "progress":
                    on_progress(message[1])
                    continue
                child.join(STOP_GRACE)
                if message[0] == "ok":
                    _, filename, content_type, size, sha256 = message
                    return Output(filename, content_type), size, sha256
                raise _rebuild(message)
            if not child.is_alive() and not receiver.poll():
                raise _crashed(child.exitcode)
    finally:
        receiver.close()
        _stop(child)


def _stop(child: Any) -> None:
    if child.is_alive():
        child.terminate()
        child.join(STOP_GRACE)
    if child.is_alive():
        child.kill()
        child.join()


def _crashed(exitcode: int | None) -> ProcessingError:
    return ProcessingError(
        f"The processor's process died (exit code {exitcode}).", code="processor_crashed"
    )


def _rebuild(message: tuple[Any, ...]) -> Exception:
    _, kind, code, text = message
    if kind == "retryable":
        return RetryableError(text, code)
    if kind == "permanent":
        return ProcessingError(text, code)
    if kind == "oserror":
        return OSError(code, text)
    return RuntimeError(text)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """If the server is killed, its forkserver exits, and then so should we (Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _child_main(
    conn: Connection,
    target: str,
    params: dict[str, Any],
    ctx_meta: dict[str, Any],
    input_path: str,
    output_path: str,
) -> None:
    _die_with_parent()
    module, _, qualname = target.partition(":")
    processor_class: Any = importlib.import_module(module)
    for part in qualname.split("."):
        processor_class = getattr(processor_class, part)
    try:
        _run_child(conn, processor_class(), params, ctx_meta, input_path, output_path)
    except (BrokenPipeError, EOFError):
        os._exit(1)  # the server is gone: nobody to report to, nothing to keep
    finally:
        conn.close()


def _run_child(
    conn: Connection,
    processor: Processor,
    params: dict[str, Any],
    ctx_meta: dict[str, Any],
    input_path: str,
    output_path: str,
) -> None:
    last_sent = 0.0

    def report(fraction: float) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= 0.1 or fraction >= 1.0:
            last_sent = now
            conn.send(("progress", fraction))

    try:
        with open(input_path, "rb") as source, open(output_path, "wb") as target_file:
            output = HashingOutput(target_file)
            ctx = ProcessorContext(input=source, output=output, on_progress=report, **ctx_meta)
            result = processor.run(ctx, processor.Params.model_validate(params))
            output.flush()
    except RetryableError as exc:
        conn.send(("error", "retryable", exc.code, exc.message))
    except ProcessingError as exc:
        conn.send(("error", "permanent", exc.code, exc.message))
    except OSError as exc:
        conn.send(("error", "oserror", exc.errno or 0, str(exc)))
    except Exception as exc:
        conn.send(("error", "bug", "processor_error", f"{type(exc).__name__}: {exc}"))
    else:
        digest = output.sha256.hexdigest()
        conn.send(("ok", result.filename, result.content_type, output.size, digest))
