"""A worker's side: the life of one pooled process, forked from the forkserver, that runs the
jobs its server sends it one at a time, and says after each one whether it is still fit for
the next (see the package's docstring)."""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from filejob.jobs.isolation.protocol import Done, JobOrder, Verdict, error_verdict
from filejob.jobs.output import HashingOutput
from filejob.processors.base import Processor, ProcessorContext

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # the server's; never the workers'
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PAGE = os.sysconf("SC_PAGE_SIZE")


def serve(conn: Connection) -> None:
    """Run the jobs `conn` brings until it closes (the server is gone; the pool itself ends a
    worker with SIGKILL)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # when the forkserver exits, so do we (Linux)
    os.setsid()  # a session and process group of our own: see the package's docstring
    # Orphans of the job's processes become ours, so that none can hide from `_alone()`.
    adopts = _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    classes: dict[str, type[Processor[Any]]] = {}
    warm = _rss()  # the worker's size once it has loaded each processor it ran
    while True:
        try:
            order: JobOrder = conn.recv()
        except (EOFError, OSError):  # OSError: a reset, the server gone with our words unread
            return
        # Whatever the last processor did to it, the mask keeps the server's stop signals out.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        first = order.target not in classes
        before = _rss()
        try:
            verdict = _run(conn, classes, order)
            clean = adopts and _alone()
            after = _rss()
            if first:  # loading a processor's code is warming up, not growth
                warm += max(0, after - before)
            conn.send(Done(verdict, clean, after - warm))
        except (OSError, EOFError):
            os._exit(1)  # the server is gone: nobody to report to, nothing to keep


def _run(conn: Connection, classes: dict[str, type[Processor[Any]]], order: JobOrder) -> Verdict:
    last_sent = 0.0

    def report(fraction: float) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent >= 0.1 or fraction >= 1.0:
            last_sent = now
            conn.send(("progress", fraction))

    try:
        processor = _processor_class(classes, order.target)()
        with open(order.input_path, "rb") as source, open(order.output_path, "wb") as target:
            output = HashingOutput(target)
            ctx = ProcessorContext(
                input=source, output=output.as_binary_io(), on_progress=report, **order.ctx_meta
            )
            result = processor.run(ctx, processor.Params.model_validate(order.params))
            output.flush()
    except Exception as exc:
        return error_verdict(exc)
    return ("ok", result.filename, result.content_type, output.size, output.sha256.hexdigest())


def _processor_class(classes: dict[str, type[Processor[Any]]], target: str) -> Any:
    if target not in classes:
        module, _, qualname = target.partition(":")
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        classes[target] = found
    return classes[target]


def _alone() -> bool:
    """Whether nothing the job started runs on: no thread but ours, no child process once the
    ended ones are reaped. As a subreaper we are the parent of every orphan among our
    descendants, and every member of our process group is one (a process can only join a
    group of its own session, and we lead ours), so no child means no one left in the group."""
    if threading.active_count() != 1:
        return False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children", "rb") as children:
                if children.read().strip():
                    return False
    except OSError:  # no /proc, or a kernel without the children file: we cannot tell
        return False
    return True


def _rss() -> int:
    """The worker's resident set size in bytes (0 where /proc is missing: growth unwatched)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _prctl(option: int, value: int) -> bool:
    """prctl(2) (Linux), saying whether it worked."""
    try:
        # The interpreter's own symbols, libc's among them: no library search (which runs
        # `ldconfig -p` in a subprocess).
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
