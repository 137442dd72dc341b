"""The server's side: a pool of warm workers, forked from the forkserver and kept across jobs,
and the supervision of one job in one of them (see the package's docstring)."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from filejob.jobs.isolation import child
from filejob.jobs.isolation.protocol import ChildDied, Done, JobOrder, rebuild
from filejob.processors.base import Cancelled, Output, Processor

STOP_GRACE = 2.0  # seconds a stopped worker gets to be reaped; an abandoned thread, to return
_POLL = 0.05  # seconds between two looks at the stop event while a job runs
# Imported once, by the forkserver: each worker starts with them loaded. `filejob.cli`: a new
# worker re-runs the server's main script (multiprocessing's spawn preparation, as
# `__mp_main__`), the `filejob` command's, which imports it: a lookup then, not ~50 ms of
# imports per worker started.
_PRELOAD = [
    "filejob.jobs.isolation.child",
    "filejob.cli",
    "filejob.processors.compress",
    "filejob.processors.thumbnail",
    "filejob.processors.csv_to_parquet",
]
_context_lock = threading.Lock()
_context: Any = None


@dataclass(frozen=True)
class Recycling:
    """When a healthy worker is replaced all the same: once it has run `max_jobs` jobs, or
    once its RSS has grown by `max_rss_growth` bytes over its warm size (0: never)."""

    max_jobs: int = 0
    max_rss_growth: int = 0

    def due(self, jobs: int, growth: int) -> bool:
        return 0 < self.max_jobs <= jobs or 0 < self.max_rss_growth <= growth


class _Worker:
    """One worker process, and the server's end of its pipe."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pid: int = process.pid
        self.jobs = 0

    def waiting(self) -> bool:
        """Alive, and silent as an idle worker is (EOF to read means it died meanwhile)."""
        return bool(self.process.is_alive()) and not self.conn.poll()

    def signal_kill(self) -> None:
        """SIGKILL the worker, its descendants and whatever is left in its process group."""
        if self._pid_taken_again():
            self.conn.close()
            return
        # A process that left the group for a session of its own (`setsid cmd &`) is still
        # a descendant: the worker is a subreaper, so orphans come back to it. They go
        # first, while the worker still holds them (it leaves once its pipe closes, and its
        # death would hand them on to init).
        try:
            for pid in _descendants(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            self.conn.close()
        # A process left behind in its group goes too. While any member lives, the group's
        # id (the worker's pid) cannot be given to another process.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:  # no group left, or the worker is not yet its leader
            with contextlib.suppress(ProcessLookupError, ValueError):  # ValueError: reaped
                if self.process.exitcode is None:
                    os.kill(self.pid, signal.SIGKILL)

    def _pid_taken_again(self) -> bool:
        """Dead, reaped, and its pid in use again: then nothing is left in its group (a
        group's id is not given out while the group has members), and the pid, and a group
        of that id, are someone else's."""
        try:
            return self.process.exitcode is not None and _exists(self.pid)
        except ValueError:  # closed: long reaped
            return _exists(self.pid)

    def reap(self) -> None:
        self.process.join(STOP_GRACE)
        with contextlib.suppress(ValueError):  # still running after the grace: left as is
            self.process.close()

    def kill(self) -> None:
        self.signal_kill()
        self.reap()


def _exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux: /proc's children files), deepest last; none where
    /proc cannot tell."""
    found: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as children:
                    pids = [int(child) for child in children.read().split()]
            except OSError:
                continue
            found += pids
            parents += pids
    return found


class WorkerPool:
    """Up to `size` idle workers (the jobs this process runs at once), taken by `run`, the
    most recently used first; `recycling` says when a healthy one is retired all the same.
    Workers start on first need; `close` ends them."""

    def __init__(self, size: int, recycling: Recycling | None = None) -> None:
        self.size = size
        self.recycling = recycling or Recycling()
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False
        self._at_exit = False

    def run(
        self,
        processor: Processor[Any],
        params: dict[str, Any],
        ctx_meta: dict[str, Any],
        input_path: str,
        output_path: str,
        stop: threading.Event,
        on_progress: Callable[[float], None],
    ) -> tuple[Output, int, str]:
        """Run `processor` in a worker; blocking (call from a worker thread). Returns the
        output's description, size and sha256, or raises what the processor raised
        (`Cancelled` once `stop` is set and the worker is gone, `ChildDied` if it died
        unasked). A worker stopped or dead is replaced, never reused."""
        target = f"{type(processor).__module__}:{type(processor).__qualname__}"
        order = JobOrder(target, params, ctx_meta, input_path, output_path)
        worker = self._dispatch(order)
        kept = False
        try:
            done = self._await(worker, stop, on_progress)
            kept = self._give_back(worker, done)
            verdict = done.verdict
            if verdict[0] != "ok":
                raise rebuild(verdict)
            _, filename, content_type, size, sha256 = verdict
            return Output(filename, content_type), size, sha256
        finally:
            if not kept:
                self._retire(worker)

    def close(self) -> None:
        """End the idle workers, and see that busy ones end with their job; idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.signal_kill()
        for worker in idle:
            worker.reap()
            self._forget(worker)
        with self._lock:
            unhook = self._at_exit and not self._all  # else a busy one is still to be ended
            self._at_exit = self._at_exit and not unhook
        if unhook:
            atexit.unregister(self._kill_all)

    def _dispatch(self, order: JobOrder) -> _Worker:
        """A worker that has taken `order`: an idle one, or else a new one."""
        worker = self._take()
        try:
            worker.conn.send(order)
            return worker
        except OSError:  # it died after `_take` looked: the job is not lost, a new one runs it
            self._retire(worker)
        worker = self._spawn()
        try:
            worker.conn.send(order)
        except BaseException:
            self._retire(worker)
            raise
        return worker

    def _take(self) -> _Worker:
        while True:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                return self._spawn()
            if worker.waiting():
                return worker
            self._retire(worker)  # died while it waited (the OOM killer...): replaced

    def _await(
        self, worker: _Worker, stop: threading.Event, on_progress: Callable[[float], None]
    ) -> Done:
        while True:
            if stop.is_set():
                raise Cancelled
            if worker.conn.poll(_POLL):
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):  # OSError: a reset, if it died with our order unread
                    worker.process.join(STOP_GRACE)
                    raise ChildDied(worker.process.exitcode) from None
                if isinstance(message, Done):
                    return message
                on_progress(message[1])
                continue
            if not worker.process.is_alive() and not worker.conn.poll():
                raise ChildDied(worker.process.exitcode)

    def _give_back(self, worker: _Worker, done: Done) -> bool:
        """Return the worker to the idle ones if it is fit for another job; say whether."""
        worker.jobs += 1
        if not done.clean or self.recycling.due(worker.jobs, done.growth):
            return False
        with self._lock:
            if self._closed or len(self._idle) >= self.size:
                return False
            self._idle.append(worker)
        return True

    def _spawn(self) -> _Worker:
        context = _forkserver()
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=child.serve, args=(theirs,), daemon=True, name="filejob-isolated"
        )
        _start_shielded(process)
        theirs.close()
        worker = _Worker(process, ours)
        with self._lock:
            self._all.add(worker)
            if not self._at_exit:
                # Before multiprocessing's own exit hook (registered earlier, so run later),
                # which would SIGTERM a worker (blocked) and wait for it forever.
                atexit.register(self._kill_all)
                self._at_exit = True
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        with self._lock:
            self._all.discard(worker)

    def _kill_all(self) -> None:
        with self._lock:
            workers = list(self._all)
        for worker in workers:
            worker.signal_kill()


def _forkserver() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def _start_shielded(process: Any) -> None:
    """Start `process`, and the forkserver with it if it is not running (first use, or it
    died), with the server's stop signals blocked: see the package's docstring."""
    resource_tracker.ensure_running()  # first: starting it would unblock them
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, child.STOP_SIGNALS)
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
