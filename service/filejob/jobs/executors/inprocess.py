"""The embedded executor: a FIFO queue drained by asyncio tasks in the server process.

`workers` jobs at once are between their claim and the end of their processor (a slot each);
recording how a job ended happens after its slot is free, so the next job is not kept waiting
for that write. Processors run in worker threads (bounded by the runner's limiter), never on
the event loop.
Durability does not come from here: every scheduled job already has its row and stored input,
and `JobService.resume_unfinished()` re-schedules whatever a previous process left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.jobs.control import RunOutcome, StopReason, StopSignal
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job
from filejob.jobs.runner import RUNNER_ERROR_DELAY, JobRunner

log = logging.getLogger(__name__)

_Item = tuple[str, IncomingFile | None]


@dataclass
class _Run:
    """A job running here: how to stop it, and when it has stopped."""

    stop: StopSignal = field(default_factory=StopSignal)
    done: anyio.Event = field(default_factory=anyio.Event)


class InProcessExecutor:
    runs_jobs_here = True

    def __init__(self, runner: JobRunner, workers: int, *, stop_timeout: float = 10.0) -> None:
        self.runner = runner
        self.workers = workers
        self.stop_timeout = stop_timeout
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._running: dict[str, _Run] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}  # jobs waiting for a retry
        self._waiting: dict[str, int] = {}  # job id -> times it is in the queue
        self._broken: set[str] = set()  # jobs whose last run raised (see `_work`)
        self._closed = False
        self._paused = False
        # Jobs between their claim and the end of their processor (asyncio binds it to the
        # running loop on first use, so it can be made here).
        self._slots = asyncio.Semaphore(workers)

    async def start(self) -> None:
        # Twice as many tasks as slots: while a job's result is being recorded (outside its
        # slot), the next job is already claimed and processing.
        self._tasks = [
            asyncio.create_task(self._work(), name=f"filejob-worker-{n}")
            for n in range(2 * self.workers)
        ]

    async def record(self, session: AsyncSession, job: Job) -> None:
        """Nothing to record: the queue is in memory, filled by `schedule` after the commit
        (and, after a crash, by `JobService.resume_unfinished`)."""

    async def schedule(
        self, job_id: str, upload: IncomingFile | None = None, *, delay: float = 0.0
    ) -> None:
        if self._closed:
            # Stays queued in the database; the next start picks it up.
            if upload is not None:
                await upload.release()
            return
        if delay > 0:
            if upload is not None:  # nothing is held open while a job waits
                await upload.release()
            loop = asyncio.get_running_loop()
            self._timers[job_id] = loop.call_later(delay, self._due, job_id)
            return
        self._put(job_id, upload)

    def _put(self, job_id: str, upload: IncomingFile | None) -> None:
        self._waiting[job_id] = self._waiting.get(job_id, 0) + 1
        self._queue.put_nowait((job_id, upload))

    def _due(self, job_id: str) -> None:
        self._timers.pop(job_id, None)
        if not self._closed:
            self._put(job_id, None)

    def running(self) -> bool:
        return bool(self._tasks) and not self._closed and not any(t.done() for t in self._tasks)

    def knows(self, job_id: str) -> bool:
        return job_id in self._waiting or job_id in self._timers or job_id in self._running

    @property
    def waiting_for_retry(self) -> int:
        return len(self._timers)

    async def cancel(self, job_id: str) -> bool:
        run = self._running.get(job_id)
        if run is None:
            return False
        run.stop.request(StopReason.CANCEL)
        await run.done.wait()
        return True

    async def run_until_idle(self, *, retries: bool = True) -> None:
        """Wait until every submitted job has been run, and with `retries` the retries they
        scheduled too (tests' "burst mode": give them a small retry delay)."""
        while True:
            await self._queue.join()
            if not self._timers or not retries:
                return
            await asyncio.sleep(
                min(t.when() for t in self._timers.values())
                - asyncio.get_running_loop().time()
                + 0.001
            )

    async def finish_running(self, grace: float) -> None:
        """Start no more jobs; wait up to `grace` seconds for the running ones to finish."""
        self._paused = True
        running = [run.done.wait() for run in self._running.values()]
        if running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*running), grace)

    async def shutdown(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()  # their rows say when they are due; the next start resumes them
        self._timers.clear()
        for run in self._running.values():
            run.stop.request(StopReason.SHUTDOWN)
        pending = [run.done.wait() for run in self._running.values()]
        if pending:
            try:
                await asyncio.wait_for(asyncio.gather(*pending), self.stop_timeout)
            except TimeoutError:
                log.warning("%d job(s) did not stop in %.0fs", len(pending), self.stop_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            _, upload = self._queue.get_nowait()
            if upload is not None:
                await upload.release()
        await self.runner.close()

    async def _work(self) -> None:
        while True:
            job_id, upload = await self._queue.get()
            if (left := self._waiting.pop(job_id, 1) - 1) > 0:
                self._waiting[job_id] = left
            if self._paused or self._closed:
                # Draining before shutdown, or shutting down: the job stays queued (in the
                # database) for the next start.
                if upload is not None:
                    await upload.release()
                self._queue.task_done()
                continue
            run = _Run()
            take_back = job_id in self._broken and job_id not in self._running
            self._running[job_id] = run
            try:
                async with self._slots:
                    if self._paused or self._closed or run.stop.reason is StopReason.SHUTDOWN:
                        # Stopping while it waited: it stays queued (in the database).
                        if upload is not None:
                            await upload.release()
                        continue
                    started = await self.runner.start(job_id, upload, run.stop, take_back=take_back)
                outcome = (
                    started
                    if isinstance(started, RunOutcome)
                    else await self.runner.finish(started)
                )
                self._broken.discard(job_id)
                if outcome.retry_in is not None:
                    await self.schedule(job_id, delay=outcome.retry_in)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not the job's failure (the runner settles those) but ours, e.g. the database
                # failed: run it again rather than leave it `running` until the next start.
                log.exception("job %s: runner error; it runs again", job_id)
                self._broken.add(job_id)
                await self.schedule(job_id, delay=RUNNER_ERROR_DELAY)
            finally:
                self._running.pop(job_id, None)
                run.done.set()
                self._queue.task_done()
