"""`filejob worker`: runs jobs from procrastinate's queue (FILEJOB_EXECUTOR=procrastinate)
through the same `JobRunner` as the in-process executor, and re-runs the jobs of workers that
went silent.

Each filejob job is one procrastinate entry for its whole life: a retry or a job interrupted
by a shutdown goes back to `todo` (procrastinate's retry), due when the runner said. The job
row stays filejob's truth; procrastinate only says who runs what. The loop that takes the
entries is filejob's own (jobs/executors/queue_loop.py says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from dataclasses import dataclass

import procrastinate
from prometheus_client import CollectorRegistry, start_http_server

from filejob.compose import job_runner, opened, storage_for
from filejob.config import Settings
from filejob.db.engine import Database, conninfo
from filejob.jobs.executors.procrastinate import QUEUE, TASK, defer, retire_stalled
from filejob.jobs.executors.queue_loop import LoopTiming, QueueLoop, queue_connector
from filejob.jobs.repository import JobRepository
from filejob.jobs.runner import RUNNER_ERROR_DELAY, JobRunner
from filejob.jobs.states import JobStatus
from filejob.ops.metrics import JobMetrics
from filejob.processors.registry import ProcessorRegistry
from filejob.storage.base import Storage

log = logging.getLogger("filejob.worker")

ADOPT_BATCH = 100  # queued jobs given a queue entry per transaction
CLEANUP_EVERY = 3600.0  # seconds between deletions of long-ended queue entries


@dataclass(frozen=True)
class Liveness:
    """How worker death is noticed: every worker beats every `heartbeat` seconds; a job whose
    worker has been silent for `silent_after` is run again, checked every `check_every`. The
    three add up to at most FILEJOB_STALLED_AFTER."""

    heartbeat: float
    silent_after: float
    check_every: float

    @classmethod
    def within(cls, stalled_after: float) -> Liveness:
        return cls(
            heartbeat=min(10.0, stalled_after / 6),
            silent_after=stalled_after / 2,
            check_every=min(10.0, stalled_after / 6),
        )


class QueueWorker:
    """One `filejob worker` process: `concurrency` jobs at once from the `filejob` queue."""

    def __init__(
        self,
        settings: Settings,
        registry: ProcessorRegistry,
        *,
        concurrency: int,
        install_signal_handlers: bool = True,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.processors = registry
        self.concurrency = concurrency
        self.install_signal_handlers = install_signal_handlers
        self.liveness = Liveness.within(settings.stalled_after)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.ready = asyncio.Event()  # set once the worker takes jobs
        self.metrics_port = metrics_port
        self.registry = CollectorRegistry()
        self.metrics = JobMetrics(self.registry)  # this worker's jobs: outcomes, durations

    async def run(self) -> None:
        """Work until stopped (SIGTERM/SIGINT, or this coroutine being cancelled): then take
        no more jobs, give running ones FILEJOB_SHUTDOWN_GRACE seconds, and put the rest back
        in the queue for another worker."""
        settings = self.settings
        async with opened(settings) as db, contextlib.AsyncExitStack() as stack:
            storage = storage_for(settings)
            runner = job_runner(
                settings,
                db,
                storage,
                self.processors,
                self.metrics,
                concurrency=self.concurrency,
            )
            stack.push_async_callback(runner.close)  # after the last job has ended
            app = procrastinate.App(
                connector=queue_connector(
                    conninfo(settings.database_url),
                    # fetching, finishing, heartbeats, cancels, housekeeping
                    max_size=self.concurrency + 4,
                )
            )
            if self.metrics_port:
                server, _ = start_http_server(
                    self.metrics_port, addr=settings.host, registry=self.registry
                )
                stack.callback(server.shutdown)
            await stack.enter_async_context(app.open_async())
            loop = self._queue_loop(app, runner)
            rescue = asyncio.create_task(
                self._housekeep_forever(app, db, storage), name="housekeeping"
            )
            log.info("worker %s: %d at once", self.name, self.concurrency)
            self.ready.set()
            try:
                await loop.run(signals=self.install_signal_handlers)
            finally:
                rescue.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await rescue

    def _queue_loop(self, app: procrastinate.App, runner: JobRunner) -> QueueLoop:
        timing = LoopTiming(
            # A notification wakes the worker for a new entry, but nothing wakes it when a
            # retry's scheduled time comes: looking every second starts a retry within 1 s
            # of its backoff.
            poll=1.0,
            abort_poll=1.0,
            heartbeat=self.liveness.heartbeat,
            stalled_worker=self.liveness.silent_after,
            grace=self.settings.shutdown_grace,
        )
        return QueueLoop(
            app.job_manager,
            runner,
            queue=QUEUE,
            slots=self.concurrency,
            timing=timing,
            error_delay=lambda: RUNNER_ERROR_DELAY,  # read at each use: tests shorten it
        )

    async def _housekeep_forever(
        self, app: procrastinate.App, db: Database, storage: Storage
    ) -> None:
        cleaned_at = swept_at = -math.inf
        while True:
            try:
                await adopt_unqueued(db)
                await rescue_stalled(app, db, self.liveness.silent_after)
                if time.monotonic() - cleaned_at >= CLEANUP_EVERY:
                    await forget_finished_entries(app, self.settings.result_ttl)
                    cleaned_at = time.monotonic()
            except Exception:
                log.exception(
                    "worker housekeeping (adoption, rescue, cleanup) failed; trying again"
                )
            if time.monotonic() - swept_at >= self.settings.sweep_interval:
                swept_at = time.monotonic()
                # What a killed worker left in the temp folder (input copies, partial outputs)
                # goes even where no API server shares this machine's data dir; local work,
                # so done whether the database answers or not.
                try:
                    if swept := await storage.sweep_temp(self.settings.orphan_grace):
                        log.info("removed %d abandoned temp file(s)", swept)
                except Exception:
                    log.exception("worker temp sweep failed; trying again")
            await asyncio.sleep(self.liveness.check_every)


async def rescue_stalled(app: procrastinate.App, db: Database, silent_after: float) -> int:
    """Run again the jobs of workers silent for `silent_after` seconds (killed, frozen, cut
    off). In one transaction per job: the stalled queue entry is retired, the row goes back
    to `queued` (or fails as `crashed` once out of attempts), fenced on its attempt so that a
    worker presumed dead that is in fact alive can no longer record anything, and the job
    gets a new queue entry. Workers rescuing at the same time do no harm (the entry is
    locked), nor does a crash halfway (the transaction rolls back; the next round retries)."""
    stalled = await app.job_manager.get_stalled_jobs(
        queue=QUEUE, task_name=TASK, seconds_since_heartbeat=silent_after
    )
    rescued = 0
    for entry in stalled:
        assert entry.id is not None
        job_id = str(entry.task_kwargs.get("job_id"))
        async with db.write() as session:
            if not await retire_stalled(session, entry.id):
                continue  # another worker rescued it, or it ended meanwhile
            repo = JobRepository(session)
            job = await repo.get(job_id)
            if job is None:
                continue
            if job.status is JobStatus.RUNNING:
                runs_again = await repo.requeue_interrupted(job)
                outcome = "it runs again" if runs_again else "it failed as `crashed`"
            else:  # its worker died before claiming it, or after settling it
                runs_again = job.status is JobStatus.QUEUED
                outcome = "it runs again" if runs_again else f"it had ended ({job.status.value})"
            if runs_again:
                await repo.set_queue_ref(job_id, await defer(session, job_id))
        rescued += 1
        log.warning("job %s: its worker went silent; %s", job_id, outcome)
    return rescued


async def forget_finished_entries(app: procrastinate.App, older_than: float) -> None:
    """Delete the queue entries that ended more than `older_than` seconds ago (rounded up to
    hours, procrastinate's unit), so that the table does not grow forever. The job rows keep
    everything a client sees; an ended entry is never read again."""
    await app.job_manager.delete_old_jobs(
        nb_hours=max(1, math.ceil(older_than / 3600)),
        queue=QUEUE,
        include_failed=True,
        include_cancelled=True,
        include_aborted=True,
    )


async def adopt_unqueued(db: Database) -> int:
    """Give a queue entry to the queued jobs that have none: those accepted by in-process
    servers before the switch to FILEJOB_EXECUTOR=procrastinate."""
    adopted = 0
    while True:
        async with db.write() as session:
            repo = JobRepository(session)
            jobs = await repo.queued_without_queue_entry(limit=ADOPT_BATCH)
            for job in jobs:
                await repo.set_queue_ref(job.id, await defer(session, job.id))
        adopted += len(jobs)
        if len(jobs) < ADOPT_BATCH:
            break
    if adopted:
        log.info("queued %d job(s) accepted before the switch to procrastinate", adopted)
    return adopted
