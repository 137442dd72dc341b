"""Running one job: claim it, have its attempt run (attempt.py), and settle how that ended in
the job's row: its final state, or another attempt after a backoff. Shared by every executor."""

from __future__ import annotations

import errno
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio
from pydantic import BaseModel, ValidationError

from filejob.db.engine import Database
from filejob.jobs.attempt import (
    AttemptEnd,
    AttemptSupervisor,
    NotStarted,
    Produced,
    Raised,
    Stopped,
)
from filejob.jobs.attempts import AttemptOutcome
from filejob.jobs.control import RunEnd, RunOutcome, StopReason, StopSignal
from filejob.jobs.error_text import AttemptFiles
from filejob.jobs.events import JobEvents
from filejob.jobs.fetching import FetchedInput, InputFetcher
from filejob.jobs.imports import ImportPolicy
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.isolation import ChildDied, WorkerPool
from filejob.jobs.log_context import about_job
from filejob.jobs.model import Job, utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus
from filejob.processors.base import ProcessingError, Processor, RetryableError
from filejob.processors.registry import ProcessorRegistry
from filejob.storage.base import Storage
from filejob.untrusted.filenames import sanitize_filename

log = logging.getLogger(__name__)

RUNNER_ERROR_DELAY = 5.0  # seconds before a job whose run raised (not the job's fault) runs again

_SUPERSEDED = RunOutcome(RunEnd.SUPERSEDED)

# One write to the job's row that ends its attempt: a `JobRepository` verb, True if it moved.
EndAttempt = Callable[[JobRepository], Awaitable[bool]]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before the attempt after `attempt`: exponential, capped, with jitter (50-100%)
    so that jobs failing together do not all come back at the same moment."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _io_code(exc: OSError) -> str:
    return "storage_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io_error"


@dataclass(frozen=True)
class Started:
    """A claimed job whose attempt has ended (`ended`), or raised what it was running for
    (a bug or a storage error: the job then fails with `internal_error`)."""

    job: Job
    ended: AttemptEnd | Exception


class JobRunner:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        registry: ProcessorRegistry,
        *,
        threads: anyio.CapacityLimiter,
        progress_interval: float,
        retry_base_delay: float = 2.0,
        retry_max_delay: float = 300.0,
        events: JobEvents | None = None,
        isolation: WorkerPool | None = None,
        worker: str | None = None,
        imports: ImportPolicy | None = None,
    ) -> None:
        """`worker`: who runs the attempts, as `job_attempts` records it (this process's
        host:pid by default). `imports`: how imports fetch their inputs (None: this runner
        fails them, `imports_disabled`)."""
        self.db = db
        self.storage = storage
        self.registry = registry
        self.attempts = AttemptSupervisor(
            db, storage, threads=threads, progress_interval=progress_interval, isolation=isolation
        )
        self.fetcher = (
            None
            if imports is None
            else InputFetcher(db, storage, imports, progress_interval=progress_interval)
        )
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.events = events
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    async def close(self) -> None:
        """End what runs beside the jobs (the pooled worker processes): the owner's shutdown,
        once no job runs."""
        await self.attempts.close()
        if self.fetcher is not None:
            await self.fetcher.close()

    async def run(
        self,
        job_id: str,
        upload: IncomingFile | None,
        stop: StopSignal,
        *,
        take_back: bool = False,
    ) -> RunOutcome:
        """Run the job to a final state (or back to `queued` for another attempt, or on
        shutdown), and say which. Never raises for a job's own failure; releases `upload` on
        every path. `take_back`: the last run of this hand-off raised (the database failed
        it), so a row it left `running` is taken back first, as after a crash."""
        started = await self.start(job_id, upload, stop, take_back=take_back)
        return started if isinstance(started, RunOutcome) else await self.finish(started)

    async def start(
        self,
        job_id: str,
        upload: IncomingFile | None,
        stop: StopSignal,
        *,
        take_back: bool = False,
    ) -> Started | RunOutcome:
        """`run`'s first part: claim the job and run its attempt; what `finish` then settles
        (or the outcome already, if the job was not claimed). An executor that bounds the jobs
        processed at once bounds this part: the settling write does not need the slot."""
        try:
            with about_job(job_id):  # the log lines of this run (and its threads)
                job = await self._claim(job_id, take_back)
                if job is None:
                    return RunOutcome(RunEnd.NOT_CLAIMED)  # cancelled or deleted meanwhile
                try:
                    return Started(job, await self._attempt(job, upload, stop))
                except Exception as exc:
                    log.exception("job %s: runner error", job_id)
                    return Started(job, exc)
        finally:
            if upload is not None:
                await upload.release()

    async def finish(self, started: Started) -> RunOutcome:
        """`run`'s second part: record how the attempt ended."""
        job, ended = started.job, started.ended
        with about_job(job.id):
            try:
                if isinstance(ended, Exception):
                    raise ended
                return await self._settle(job, ended)
            except Exception as exc:
                # A bug or an unexpected storage error: the job still gets a final state.
                if exc is not ended:
                    log.exception("job %s: runner error", job.id)
                return await self._fail(job, "internal_error", type(exc).__name__)

    async def _claim(self, job_id: str, take_back: bool) -> Job | None:
        async with self.db.write() as session:
            repo = JobRepository(session)
            if take_back:
                await repo.take_back(job_id)
            claimed = await repo.start(job_id, self.worker)
            job = await repo.get(job_id) if claimed else None
        if job is not None and self.events is not None:
            self.events.started(job)
        return job

    async def _attempt(self, job: Job, upload: IncomingFile | None, stop: StopSignal) -> AttemptEnd:
        processor = self.registry.get(job.processor)
        if processor is None:
            message = f"Processor {job.processor!r} is not installed on this server."
            return NotStarted("unknown_processor", message)
        try:
            params: BaseModel = processor.Params.model_validate(job.params)
        except ValidationError as exc:
            return NotStarted("invalid_params", str(exc))
        if upload is None and job.source_url is not None and job.input_key is None:
            return await self._import(job, processor, params, stop)
        return await self.attempts.run(job, processor, params, upload, stop)

    async def _import(
        self, job: Job, processor: Processor, params: BaseModel, stop: StopSignal
    ) -> AttemptEnd:
        """An import's attempt whose input is not fetched yet: fetch it (jobs/fetching.py),
        then process it within what is left of the attempt's time."""
        if self.fetcher is None:
            message = "This worker does not fetch imports (FILEJOB_IMPORT_* are not set up)."
            return NotStarted("imports_disabled", message)
        began = anyio.current_time()
        fetched = await self.fetcher.fetch(job, processor, stop)
        if not isinstance(fetched, FetchedInput):
            return fetched
        try:
            spent = anyio.current_time() - began
            return await self.attempts.run(job, processor, params, fetched, stop, spent=spent)
        finally:
            await fetched.release()

    async def _settle(self, job: Job, ended: AttemptEnd) -> RunOutcome:
        """Record how the attempt ended."""
        match ended:
            case NotStarted(code, message):
                return await self._fail(job, code, message)
            case Stopped(reason):
                return await self._stopped(job, reason)
            case Raised(error, files):
                return await self._raised(job, error, files)
            case Produced():
                return await self._publish(job, ended)

    async def _stopped(self, job: Job, reason: StopReason) -> RunOutcome:
        if reason is StopReason.TIMEOUT:
            message = f"Stopped after its time limit of {job.timeout_seconds:g} s."
            return await self._fail(job, "timeout", message, AttemptOutcome.TIMED_OUT)
        if reason is StopReason.SHUTDOWN:
            # We interrupted it ourselves: that attempt does not count.
            if await self._finish(job, JobStatus.QUEUED, lambda repo: repo.put_back(job)):
                return RunOutcome(RunEnd.INTERRUPTED)
            return _SUPERSEDED
        if await self._finish(job, JobStatus.CANCELLED, lambda repo: repo.cancel(job)):
            return RunOutcome(RunEnd.CANCELLED)
        return _SUPERSEDED

    async def _raised(self, job: Job, error: Exception, files: AttemptFiles) -> RunOutcome:
        """Every message from the processor (or about its files) goes through `_client_text`:
        a client never sees a server path."""
        if isinstance(error, ChildDied):
            # Not the server's doing (it had not asked the child to stop): interrupted, like
            # an attempt its server's crash cut short. It counts, and a job whose every
            # attempt ends so fails as `crashed`, as the workers' rescue says.
            log.warning("job %s: %s", job.id, error.message)
            return await self._retry_or_fail(job, "crashed", error.message)
        if isinstance(error, RetryableError):
            return await self._retry_or_fail(job, error.code, _client_text(error.message, files))
        if isinstance(error, ProcessingError):
            return await self._fail(job, error.code, _client_text(error.message, files))
        if isinstance(error, OSError):  # I/O trouble is worth another try
            return await self._retry_or_fail(job, _io_code(error), _client_text(str(error), files))
        log.error("job %s: processor %s crashed", job.id, job.processor, exc_info=error)
        message = _client_text(f"{type(error).__name__}: {error}", files)
        return await self._fail(job, "processor_error", message)

    async def _publish(self, job: Job, produced: Produced) -> RunOutcome:
        published = await self._finish(
            job,
            JobStatus.SUCCEEDED,
            lambda repo: repo.succeed(
                job,
                key=produced.key,
                filename=sanitize_filename(produced.output.filename, "result"),
                content_type=produced.output.content_type,
                size=produced.size,
                sha256=produced.sha256,
            ),
        )
        if published:
            return RunOutcome(RunEnd.SUCCEEDED)
        await self.storage.delete(produced.key)  # a stale attempt's result (its own key)
        return _SUPERSEDED

    async def _retry_or_fail(self, job: Job, code: str, message: str) -> RunOutcome:
        if job.attempts >= job.max_attempts:
            return await self._fail(job, code, message)
        delay = backoff(job.attempts, self.retry_base_delay, self.retry_max_delay)
        due = utcnow() + timedelta(seconds=delay)
        if await self._finish(
            job, JobStatus.QUEUED, lambda repo: repo.retry_later(job, code, message, due)
        ):
            return RunOutcome.retry(delay)
        return _SUPERSEDED

    async def _fail(
        self, job: Job, code: str, message: str, outcome: AttemptOutcome = AttemptOutcome.FAILED
    ) -> RunOutcome:
        if await self._finish(
            job, JobStatus.FAILED, lambda repo: repo.fail(job, code, message, outcome)
        ):
            return RunOutcome(RunEnd.FAILED)
        return _SUPERSEDED

    async def _finish(self, job: Job, status: JobStatus, end: EndAttempt) -> bool:
        """End this attempt with `end`, which moves the job to `status`. Fenced (see the
        repository's verbs): False, nothing written, if the attempt is no longer current."""
        async with self.db.write() as session:
            moved = await end(JobRepository(session))
        if moved and job.started_at is not None:
            seconds = (utcnow() - job.started_at).total_seconds()
            log.info(
                "job %s: %s after %.3fs (attempt %d)", job.id, status.value, seconds, job.attempts
            )
            if self.events is not None:
                self.events.ended(job, status, seconds)
        if not moved:
            log.warning(
                "job %s: attempt %d was no longer current when it ended as %s",
                job.id,
                job.attempts,
                status.value,
            )
        return moved


def _client_text(text: str, files: AttemptFiles) -> str:
    """`text` without the server's paths (`AttemptFiles.scrub`). The operator keeps the whole
    text: it is logged when the scrub changed it."""
    scrubbed = files.scrub(text)
    if scrubbed != text:
        log.info("processor error as raised (the job shows it without paths): %s", text)
    return scrubbed
