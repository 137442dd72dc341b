"""Running a processor in a child process that can be stopped for real.

Threads cannot be killed; processes can. A processor that declares `isolation = "process"` runs
in a child forked from a preloaded forkserver (cheap, and safe: the server is single-threaded).
The child reads the stored input by path, writes the result to a named temp file while hashing
it, and reports over a pipe: progress, then its outcome.

Who stops a child. Only its parent, the server (or worker): on cancel, timeout or shutdown it
SIGKILLs the child's process group at once, and discards the partial output itself. SIGTERM
would buy nothing: Python's default action for it is to die on the spot, with no cleanup, and a
processor has nothing to save. A stop signal meant for the server must not reach the children
on its way, wherever it comes from: Ctrl+C (SIGINT to the terminal's foreground group),
`kill -TERM -<pgid>`, an init that forwards to the group, and systemd's default
KillMode=control-group, which sends SIGTERM to every process of the unit one by one. A process
group of their own therefore cannot be all of it, and the forkserver must be shielded too: the
children are its children, and die with it (PR_SET_PDEATHSIG).

So SIGINT and SIGTERM are *blocked* in the thread that starts the forkserver: a signal mask
survives fork() and exec(). CPython 3.11 keeps it all the way: `forkserver.ensure_running()`
starts the server with `util.spawnv_passfds()`, whose `_posixsubprocess.fork_exec()` restores
the caller's mask in the new process (after blocking everything around its vfork); the
forkserver's `main()` sets handlers (SIGCHLD, SIGINT ignored) but never the mask; each child is
an `os.fork()` of it, and `_serve_one()` resets handlers only. A blocked signal stays pending,
harmlessly, and SIGKILL cannot be blocked, so the parent's stop and PDEATHSIG work as before.
One trap: `resource_tracker.ensure_running()`, which `forkserver.ensure_running()` calls first,
*unblocks* SIGINT and SIGTERM in the calling thread when it starts the tracker, undoing our mask;
so the tracker is started before the mask is set (it shields itself: it ignores both).

Each child also starts a session of its own (setsid): no terminal's job control reaches it, and
the parent's SIGKILL to its process group takes whatever the processor itself started along.
Processes a processor starts inherit the mask, so they too ignore the server's stop signals; a
processor that stops one of them uses SIGKILL (`Popen.kill()`), not `terminate()`.

A child that dies without reporting while nobody asked it to stop (the OOM killer, a segfault
in a C extension, its process group killed from outside) raises `ChildDied`: the runner
counts it as an interrupted attempt and retries it, as it would after the server's own crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from filejob.jobs.output import HashingOutput
from filejob.processors.base import (
    Cancelled,
    Output,
    ProcessingError,
    Processor,
    ProcessorContext,
    RetryableError,
)

STOP_GRACE = 2.0  # seconds a stopped child gets to be reaped; an abandoned thread, to return
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # the server's; never the children's
_PRELOAD = [
    "filejob.jobs.isolation",
    "filejob.processors.compress",
    "filejob.processors.thumbnail",
    "filejob.processors.csv_to_parquet",
]
_context_lock = threading.Lock()
_context: Any = None


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
    _start_shielded(child)
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
                    raise ChildDied(child.exitcode) from None
                if message[0] == "progress":
                    on_progress(message[1])
                    continue
                child.join(STOP_GRACE)
                if message[0] == "ok":
                    _, filename, content_type, size, sha256 = message
                    return Output(filename, content_type), size, sha256
                raise _rebuild(message)
            if not child.is_alive() and not receiver.poll():
                raise ChildDied(child.exitcode)
    finally:
        receiver.close()
        _stop(child)


def _start_shielded(child: Any) -> None:
    """Start `child`, and the forkserver with it if it is not running (first use, or it died),
    with the server's stop signals blocked: see the module's docstring."""
    resource_tracker.ensure_running()  # first: starting it would unblock them
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop(child: Any) -> None:
    """Kill the child and whatever it started (its process group); the caller discards its
    output."""
    # Whether or not the child is still running: a process it left behind in its group
    # (started in the background, then returned) goes too. While any member lives, the
    # group's id (the child's pid) cannot be given to another process.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # no group left, or the child is not yet its leader
        if child.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
    child.join(STOP_GRACE)


def _rebuild(message: tuple[Any, ...]) -> Exception:
    _, kind, code, text = message
    if kind == "retryable":
        return RetryableError(text, code)
    if kind == "permanent":
        return ProcessingError(text, code)
    if kind == "oserror":
        return OSError(code, text) if code else OSError(text)
    return RuntimeError(text)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """When the server exits, however it ends, its forkserver exits, and then so do we
    (Linux)."""
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
    os.setsid()  # a session and process group of our own: see the module's docstring
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
            ctx = ProcessorContext(
                input=source, output=output.as_binary_io(), on_progress=report, **ctx_meta
            )
            result = processor.run(ctx, processor.Params.model_validate(params))
            output.flush()
    except RetryableError as exc:
        conn.send(("error", "retryable", exc.code, exc.message))
    except ProcessingError as exc:
        conn.send(("error", "permanent", exc.code, exc.message))
    except OSError as exc:
        # The text without its "[Errno N] ", which the parent's OSError(errno, text) adds back.
        text = str(exc).removeprefix(f"[Errno {exc.errno}] ")
        conn.send(("error", "oserror", exc.errno or 0, text))
    except Exception as exc:
        conn.send(("error", "bug", "processor_error", f"{type(exc).__name__}: {exc}"))
    else:
        digest = output.sha256.hexdigest()
        conn.send(("ok", result.filename, result.content_type, output.size, digest))
