"""The loop of a `filejob worker` over procrastinate's queue: take an entry when a slot is
free, run its job through the `JobRunner`, and record how the entry ended.

filejob's own loop rather than procrastinate's `Worker`, for three reasons the profile of a
small job showed (issue 13): procrastinate holds a slot until the entry's end is recorded, so a
one-slot worker fetched the next job only after four commits in a row (fetch, claim, settle,
finish); here the slot is free once the attempt has ended, and the next job is fetched and
started while the last one settles. Its connection pool wrapped each of its statements in
BEGIN/COMMIT and pinged the server before each one; `queue_connector` runs them in
autocommit and pings only a connection that sat idle. And a stop is the runner's
`StopSignal`, asked for directly, rather than a cancelled task whose run has to be shielded.

Only procrastinate's `JobManager` (its public API, on the schema migration 0005 froze) is
used, so entries, workers, heartbeats and the stalled-job rescue stay procrastinate's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.jobs import Job as QueueEntry
from procrastinate.jobs import Status
from procrastinate.manager import JobManager

from filejob.jobs.control import RunEnd, RunOutcome, StopReason, StopSignal
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.runner import RUNNER_ERROR_DELAY, Started

log = logging.getLogger("filejob.worker")

IDLE_BEFORE_CHECK = 5.0  # seconds a pooled connection sits unused before it is pinged
RECORD_BACKOFF = (0.5, 1.0, 2.0, 4.0)  # pauses between tries at recording an entry's end


def queue_connector(conninfo: str, max_size: int) -> procrastinate.PsycopgConnector:
    """procrastinate's connector for a worker's bookkeeping: each of its statements (one SQL
    function call) commits on its own, without a BEGIN and a COMMIT round trip around it."""
    return procrastinate.PsycopgConnector(
        conninfo=conninfo,
        min_size=2,
        max_size=max_size,
        configure=_IdleCheck.configure,
        pool_factory=_idle_checked_pool,
    )


class _IdleCheck:
    """The pool's check of a connection it hands out, only after IDLE_BEFORE_CHECK seconds
    unused (when a server restart or an idle timeout has most likely closed it): a connection
    reused within moments is alive, and pinging it cost a round trip per statement."""

    used: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    async def configure(cls, connection: psycopg.AsyncConnection[Any]) -> None:
        """Each new connection: in autocommit (set here, not in the pool's connection
        arguments, which procrastinate's listener passes on with an autocommit of its own)."""
        await connection.set_autocommit(True)
        cls.used[connection] = time.monotonic()

    @classmethod
    async def check(cls, connection: psycopg.AsyncConnection[Any]) -> None:
        now = time.monotonic()
        last = cls.used.get(connection, -IDLE_BEFORE_CHECK)
        cls.used[connection] = now
        if now - last >= IDLE_BEFORE_CHECK:
            await psycopg_pool.AsyncConnectionPool.check_connection(connection)


def _idle_checked_pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    kwargs["check"] = _IdleCheck.check  # instead of procrastinate's ping at every checkout
    return psycopg_pool.AsyncConnectionPool(**kwargs)


class Runner(Protocol):
    """What the loop needs of a `JobRunner`: its run in two parts."""

    async def start(
        self, job_id: str, upload: IncomingFile | None, stop: StopSignal, *, take_back: bool
    ) -> Started | RunOutcome: ...

    async def finish(self, started: Started) -> RunOutcome: ...


@dataclass(frozen=True)
class LoopTiming:
    """`poll`: seconds between fetches when nothing wakes the loop (a retry coming due sends
    no notification); `abort_poll`: between looks for cancels, while jobs run (a missed
    notification's fallback); `heartbeat`: between the worker's heartbeats; `stalled_worker`:
    silence after which a worker's registration is pruned; `grace`: what running jobs get,
    once stopping, before they are stopped and handed back; `record_backoff`: the pauses
    between tries at recording an entry's end, after which the worker stops."""

    poll: float
    abort_poll: float
    heartbeat: float
    stalled_worker: float
    grace: float
    record_backoff: tuple[float, ...] = RECORD_BACKOFF


class QueueLoop:
    """Up to `slots` jobs at once from `queue`, until `stop` (or the `run` task is
    cancelled, which stops it the same way and then re-raises)."""

    def __init__(
        self,
        manager: JobManager,
        runner: Runner,
        *,
        queue: str,
        slots: int,
        timing: LoopTiming,
        error_delay: Callable[[], float] = lambda: RUNNER_ERROR_DELAY,
    ) -> None:
        """`error_delay`: seconds before a job whose run raised runs again (asked each time)."""
        self.manager = manager
        self.runner = runner
        self.queue = queue
        self.timing = timing
        self.error_delay = error_delay
        self.worker_id: int | None = None
        self._slots = asyncio.Semaphore(slots)
        self._wake = asyncio.Event()  # an entry was inserted
        self._stopping = asyncio.Event()
        self._stops: dict[int, StopSignal] = {}  # entry id -> its run's stop, until recorded
        self._jobs: set[asyncio.Task[None]] = set()
        self._failed: list[Exception] = []  # ends that could not be recorded

    def stop(self) -> None:
        """Take no more entries; running jobs get `timing.grace`, then are handed back."""
        self._stopping.set()

    async def run(self, *, signals: bool = False) -> None:
        """With `signals`, SIGTERM and SIGINT stop it (a second one then ends the process
        as it would have without us)."""
        loop = asyncio.create_task(self._run(), name="queue loop")
        try:
            with _stop_on_signals(self.stop) if signals else contextlib.nullcontext():
                await asyncio.shield(loop)
        except asyncio.CancelledError:
            self.stop()
            await loop
            raise

    async def _run(self) -> None:
        await self.manager.prune_stalled_workers(self.timing.stalled_worker)
        self.worker_id = await self.manager.register_worker()
        side = [
            asyncio.create_task(self._beat_forever(), name="heartbeat"),
            asyncio.create_task(self._listen(), name="listener"),
            asyncio.create_task(self._poll_aborts_forever(), name="abort polling"),
        ]
        for task in side:
            task.add_done_callback(self._stop_if_failed)
        try:
            await self._fetch_until_stopped()
        finally:
            # Beating and listening (for cancels) all through the grace.
            await self._hand_back_after_grace()
            for task in side:
                task.cancel()
            failed = [*self._failed, *await _failures(side)]
            await self.manager.unregister_worker(self.worker_id)
        if failed:
            raise failed[0]

    def _stop_if_failed(self, side_task: asyncio.Task[None]) -> None:
        """A heartbeat or a listener that failed stops the worker (`_run` then raises what it
        raised): a worker that can no longer beat would soon be taken for dead anyway."""
        if not side_task.cancelled() and side_task.exception() is not None:
            self.stop()

    async def _fetch_until_stopped(self) -> None:
        worker_id = self.worker_id
        assert worker_id is not None
        while await self._slot_taken():
            # Cleared before the fetch: an entry inserted during it wakes the next wait.
            self._wake.clear()
            try:
                entry = await self.manager.fetch_job(queues=[self.queue], worker_id=worker_id)
            except BaseException:
                self._slots.release()
                raise
            if entry is None:
                self._slots.release()
                await _first(
                    self._wake.wait(), asyncio.sleep(self.timing.poll), self._stopping.wait()
                )
                continue
            assert entry.id is not None
            # Known before its task starts: a cancel coming meanwhile finds it.
            stop = self._stops[entry.id] = StopSignal()
            task = asyncio.create_task(self._run_entry(entry, stop), name=f"entry {entry.id}")
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _slot_taken(self) -> bool:
        """Take a slot once one is free: True; False, and none taken, once stopping."""
        if self._stopping.is_set():
            return False
        if not self._slots.locked():
            await self._slots.acquire()  # without waiting
            return True
        acquired = await _first(self._slots.acquire(), self._stopping.wait())
        if self._stopping.is_set():
            if acquired:
                self._slots.release()
            return False
        return acquired

    async def _run_entry(self, entry: QueueEntry, stop: StopSignal) -> None:
        """Run the entry's job; the slot is freed once its attempt has ended, before the row
        is settled and the entry recorded."""
        assert entry.id is not None
        job_id = str(entry.task_kwargs["job_id"])
        # A run of this entry before has ended; if it raised, it may have left the row
        # `running`. The entry is the job's only live one, so no other run can be going.
        take_back = entry.attempts > 0
        outcome: RunOutcome | None = None
        try:
            try:
                started = await self.runner.start(job_id, None, stop, take_back=take_back)
            finally:
                self._slots.release()
            outcome = (
                started if isinstance(started, RunOutcome) else await self.runner.finish(started)
            )
        except Exception:
            # Not the job's failure (the runner settles those) but ours, e.g. the database was
            # unreachable: the entry runs again rather than the job being lost.
            log.exception("job %s: runner error; it runs again", job_id)
        try:
            await self._record_surely(entry, outcome, stop)
        except Exception as exc:
            # Left `doing` under a worker that still beats, the entry would never run again
            # (and a retried or handed-back job is `queued`, waiting on it). Stopped, the
            # worker unregisters (or goes silent): the stalled-job rescue then runs it again.
            log.exception("job %s: its queue entry %d could not be ended", job_id, entry.id)
            self._failed.append(exc)
            self.stop()
        finally:
            del self._stops[entry.id]

    async def _record_surely(
        self, entry: QueueEntry, outcome: RunOutcome | None, stop: StopSignal
    ) -> None:
        """`_record`, tried again after each pause of `timing.record_backoff` while it fails
        (a database blip, a pool that timed out); the last failure is raised."""
        pauses = list(self.timing.record_backoff)
        tried = False
        while True:
            try:
                if not tried or await self._still_ours(entry):
                    await self._record(entry, outcome, stop)
                return
            except Exception:
                if not pauses:
                    raise
                log.warning("queue entry %d: not ended; trying again", entry.id, exc_info=True)
            tried = True
            await asyncio.sleep(pauses.pop(0))

    async def _still_ours(self, entry: QueueEntry) -> bool:
        """Whether the entry is still this worker's run of it, as fetched. Not if a try that
        seemed to fail had committed (its answer lost): either end counts the attempt, and
        another worker may have taken the entry since; nor if it was retired as stalled.
        Recording it again would then end what is no longer ours."""
        now = list(await self.manager.list_jobs_async(id=entry.id))
        ours = (Status.DOING.value, self.worker_id, entry.attempts)
        return bool(now) and (now[0].status, now[0].worker_id, now[0].attempts) == ours

    async def _record(
        self, entry: QueueEntry, outcome: RunOutcome | None, stop: StopSignal
    ) -> None:
        """The entry's end: back to `todo` when the job runs again (after the delay the runner
        chose, or at once when it was handed back), else `aborted` after a cancel, else
        `succeeded` (the run is over; the job's own outcome is in its row)."""
        if outcome is None:
            await self._again(entry, self.error_delay())
        elif outcome.end is RunEnd.INTERRUPTED:
            await self._again(entry, 0.0)
        elif outcome.retry_in is not None:
            await self._again(entry, outcome.retry_in)
        else:
            cancelled = stop.reason is StopReason.CANCEL
            status = Status.ABORTED if cancelled else Status.SUCCEEDED
            await self.manager.finish_job(entry, status, delete_job=False)

    async def _again(self, entry: QueueEntry, delay: float) -> None:
        await self.manager.retry_job(entry, retry_at=datetime.now(UTC) + timedelta(seconds=delay))

    async def _hand_back_after_grace(self) -> None:
        """Give running jobs the grace, then stop the rest for a shutdown (the runner puts
        each back to `queued`, and its entry back to `todo`), and wait for every record."""
        if self._jobs:
            await asyncio.wait(set(self._jobs), timeout=self.timing.grace)
        for stop in self._stops.values():
            if not stop.is_set():  # a cancel or a timeout under way stays what it is
                stop.request(StopReason.SHUTDOWN)
        while self._jobs:
            await asyncio.wait(set(self._jobs))

    def _abort(self, entry_ids: list[int]) -> None:
        for entry_id in entry_ids:
            stop = self._stops.get(entry_id)
            if stop is not None and not stop.is_set():
                stop.request(StopReason.CANCEL)

    async def _on_notification(self, *, channel: str, notification: Any) -> None:
        if notification["type"] == "job_inserted":
            self._wake.set()
        elif notification["type"] == "abort_job_requested":
            self._abort([int(notification["job_id"])])

    async def _listen(self) -> None:
        await self.manager.listen_for_jobs(
            on_notification=self._on_notification, queues=[self.queue]
        )

    async def _beat_forever(self) -> None:
        assert self.worker_id is not None
        while True:
            await asyncio.sleep(self.timing.heartbeat)
            await self.manager.update_heartbeat(self.worker_id)

    async def _poll_aborts_forever(self) -> None:
        while True:
            await asyncio.sleep(self.timing.abort_poll)
            if not self._stops:
                continue
            try:
                self._abort(list(await self.manager.list_jobs_to_abort_async(self.queue)))
            except Exception:
                log.exception("looking for cancelled jobs failed; trying again")


async def _first(*waits: Awaitable[Any]) -> bool:
    """Wait until the first of `waits` is done, and cancel the others; whether the first
    given was the one done."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return tasks[0] in done


async def _failures(tasks: list[asyncio.Task[None]]) -> list[BaseException]:
    """What the (cancelled) `tasks` raised other than their cancellation, logged."""
    await asyncio.wait(tasks)
    failed = []
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("worker %s failed; the worker stops", task.get_name(), exc_info=exc)
            failed.append(exc)
    return failed


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Any:
    """SIGTERM and SIGINT call `stop` once; the handlers from before are put back then, or
    when the block ends."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    restored = False

    def restore() -> None:
        nonlocal restored
        if not restored:
            restored = True
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)

    def on_signal() -> None:
        restore()
        stop()

    for sig in previous:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        restore()
