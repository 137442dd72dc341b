"""Running one job: claim it, feed its input to the processor, publish the result, record the
outcome. Shared by every executor."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError

from filejob.db.engine import Database
from filejob.jobs.error_text import folders_of, scrub_paths
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.isolation import STOP_GRACE, ChildDied, run_isolated
from filejob.jobs.model import Job, utcnow
from filejob.jobs.output import HashingOutput
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus
from filejob.jobs.storage_keys import result_key
from filejob.ops import logs
from filejob.ops.metrics import JobMetrics
from filejob.processors.base import (
    Cancelled,
    Output,
    ProcessingError,
    Processor,
    ProcessorContext,
    RetryableError,
)
from filejob.processors.registry import ProcessorRegistry
from filejob.storage.base import (
    BlobNotFound,
    BlobReader,
    BlobWriter,
    LocalFiles,
    StagesLocalCopies,
    Storage,
)
from filejob.untrusted.filenames import sanitize_filename

log = logging.getLogger(__name__)

RUNNER_ERROR_DELAY = 5.0  # seconds before a job whose run raised (not the job's fault) runs again


@dataclass
class RunControl:
    """Between an executor and one run: `stop` is set (with `reason` "cancel", "shutdown" or,
    by the runner itself, "timeout") to stop the job; the runner sets `retry_in` (seconds)
    when the job went back to the queue for another attempt."""

    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = "cancel"
    done: anyio.Event = field(default_factory=anyio.Event)
    retry_in: float | None = None


# The result of a run: what the processor said about its output, and the output's size and sha256.
Outcome = tuple[Output, int, str]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before the attempt after `attempt`: exponential, capped, with jitter (50-100%)
    so that jobs failing together do not all come back at the same moment."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _io_code(exc: OSError) -> str:
    return "storage_full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "io_error"


def _input_meta(job: Job) -> dict[str, Any]:
    """What a processor is told about its input, in this process or a child."""
    return {
        "input_size": job.input_size,
        "input_filename": job.input_filename,
        "input_content_type": job.input_content_type,
    }


@dataclass(frozen=True)
class _AttemptFiles:
    """Where an attempt's input and output are (when they have a path): named in its error
    message as "<input>" and "<output>", and their folders not at all."""

    input: str | None
    output: str | None

    @classmethod
    def of(cls, *files: object) -> _AttemptFiles:
        names = [getattr(file, "name", None) for file in files]
        paths = [name if isinstance(name, str) else None for name in names]
        return cls(*paths)

    def scrub(self, text: str) -> str:
        """`text` fit for a client: no server path in it (see `error_text`). The operator
        keeps the whole text: it is logged when the scrub changed it."""
        pairs = ((self.input, "<input>"), (self.output, "<output>"))
        named = {path: name for path, name in pairs if path}
        scrubbed = scrub_paths(text, named, folders_of(self.input, self.output))
        if scrubbed != text:
            log.info("processor error as raised (the job shows it without paths): %s", text)
        return scrubbed


class _Progress:
    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


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
        metrics: JobMetrics | None = None,
    ) -> None:
        # Processors that ask for a process of their own get one where the child can be given
        # a path to read (a local blob, or a local copy of a remote one) and a path to fill.
        self._local_files = storage if isinstance(storage, LocalFiles) else None
        self._staged_files = storage if isinstance(storage, StagesLocalCopies) else None
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.db = db
        self.storage = storage
        self.registry = registry
        self.threads = threads
        self.progress_interval = progress_interval
        self.metrics = metrics

    async def run(
        self,
        job_id: str,
        upload: IncomingFile | None,
        control: RunControl,
        *,
        take_back: bool = False,
    ) -> None:
        """Run the job to a final state (or back to `queued` on shutdown). Never raises for
        a job's own failure; releases `upload` on every path. `take_back`: the last run of
        this hand-off raised (the database failed it), so a row it left `running` is taken
        back first, as after a crash."""
        tagged = logs.job_id.set(job_id)  # the log lines of this run (and its threads)
        try:
            async with self.db.write() as session:
                repo = JobRepository(session)
                if take_back:
                    await repo.take_back(job_id)
                claimed = await repo.start(job_id)
                job = await repo.get(job_id) if claimed else None
            if job is None:
                return  # cancelled or deleted while it waited
            if self.metrics is not None:
                self.metrics.started(job)
            try:
                await self._run_claimed(job, upload, control)
            except Exception as exc:
                # A bug or an unexpected storage error: the job still gets a final state.
                log.exception("job %s: runner error", job_id)
                await self._finish(job, JobStatus.FAILED, "internal_error", type(exc).__name__)
        finally:
            logs.job_id.reset(tagged)
            if upload is not None:
                await upload.release()

    async def _run_claimed(
        self, job: Job, upload: IncomingFile | None, control: RunControl
    ) -> None:
        processor = self.registry.get(job.processor)
        if processor is None:
            await self._finish(
                job,
                JobStatus.FAILED,
                "unknown_processor",
                f"Processor {job.processor!r} is not installed on this server.",
            )
            return
        try:
            params = processor.Params.model_validate(job.params)
        except ValidationError as exc:
            await self._finish(job, JobStatus.FAILED, "invalid_params", str(exc))
            return
        try:
            reader = None if upload is not None else await self._open_input(job)
        except BlobNotFound:
            await self._finish(
                job, JobStatus.FAILED, "input_missing", "The stored input is missing."
            )
            return
        try:
            source = upload.file if upload is not None else reader.file  # type: ignore[union-attr]
            await self._process(job, processor, params, source, control)
        finally:
            if reader is not None:
                reader.close()

    async def _open_input(self, job: Job) -> BlobReader:
        if not job.input_key:
            raise BlobNotFound(job.id)
        return await self.storage.open(job.input_key)

    async def _process(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        source: BinaryIO,
        control: RunControl,
    ) -> None:
        async with contextlib.AsyncExitStack() as stack:
            progress = _Progress()
            input_path = None
            if processor.isolation == "process":
                input_path = await self._input_path(job, source, stack)
            if input_path is not None:
                writer, work = await self._in_child(
                    job, processor, params, control, progress, input_path
                )
                files = _AttemptFiles(input_path, str(writer.path))
            else:
                writer, work = await self._in_thread(
                    job, processor, params, source, control, progress
                )
                files = _AttemptFiles.of(source, writer.file)
            await self._run_work(job, writer, work, control, progress, files)

    async def _input_path(
        self, job: Job, source: BinaryIO, stack: contextlib.AsyncExitStack
    ) -> str | None:
        """A path a child process can read the job's input from, if the backend has one. A
        remote backend's copy is made from `source`: on a first attempt, the upload's local
        spool, so the input just uploaded is not downloaded again."""
        if not job.input_key:
            return None
        if self._local_files is not None:
            return str(self._local_files.local_path(job.input_key))
        if self._staged_files is not None:
            return str(await stack.enter_async_context(self._staged_files.local_copy(source)))
        return None

    async def _run_work(
        self,
        job: Job,
        writer: BlobWriter,
        work: Callable[[], Outcome],
        control: RunControl,
        progress: _Progress,
        files: _AttemptFiles,
    ) -> None:
        outcome: Outcome | BaseException = Cancelled()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._persist_progress, job.id, job.attempts, progress)
                with anyio.CancelScope() as processing:
                    tg.start_soon(self._supervise, job.timeout_seconds, control, processing)
                    try:
                        outcome = await anyio.to_thread.run_sync(
                            work, limiter=self.threads, abandon_on_cancel=True
                        )
                    except Exception as exc:  # the processor's failure is the job's, not ours
                        outcome = exc
                if processing.cancelled_caught:
                    log.warning(
                        "job %s: processor ignored the stop; its thread is abandoned", job.id
                    )
                tg.cancel_scope.cancel()
        except BaseException:
            await writer.discard()
            raise
        await self._settle(job, outcome, writer, control, files)

    async def _in_child(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        control: RunControl,
        progress: _Progress,
        input_path: str,
    ) -> tuple[BlobWriter, Callable[[], Outcome]]:
        """The work as a child process that reads `input_path` and fills a named temp."""
        files = self._local_files or self._staged_files
        assert files is not None
        writer = await files.create_named(result_key(job.id, job.attempts))
        work = functools.partial(
            run_isolated,
            processor,
            params.model_dump(mode="json"),
            _input_meta(job),
            input_path,
            str(writer.path),
            control.stop,
            progress.set,
        )
        return writer, work

    async def _in_thread(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        source: BinaryIO,
        control: RunControl,
        progress: _Progress,
    ) -> tuple[BlobWriter, Callable[[], Outcome]]:
        """The work as a call in a worker thread, reading the (possibly still open) input."""
        writer = await self.storage.create(result_key(job.id, job.attempts))
        output = HashingOutput(writer.file)
        ctx = ProcessorContext(
            input=source,
            output=output,
            cancel_event=control.stop,
            on_progress=progress.set,
            **_input_meta(job),
        )
        source.seek(0)

        def work() -> Outcome:
            result = processor.run(ctx, params)
            output.flush()
            return result, output.size, output.sha256.hexdigest()

        return writer, work

    async def _supervise(
        self, limit: float, control: RunControl, processing: anyio.CancelScope
    ) -> None:
        """Stop the processor at its deadline; if it has not returned `STOP_GRACE` seconds
        after being told to stop (timeout, cancel or shutdown), stop waiting for it. Threads
        cannot be killed: an abandoned one runs on until it next checks or writes, and its
        output is discarded."""
        deadline = anyio.current_time() + limit
        while not control.stop.is_set():
            if anyio.current_time() >= deadline:
                control.reason = "timeout"
                control.stop.set()
                break
            await anyio.sleep(0.05)
        await anyio.sleep(STOP_GRACE)
        processing.cancel()

    async def _settle(
        self,
        job: Job,
        outcome: Outcome | BaseException,
        writer: BlobWriter,
        control: RunControl,
        files: _AttemptFiles,
    ) -> None:
        """Record how the attempt ended. Every message from the processor (or about its
        files) goes through `files.scrub`: a client never sees a server path."""
        if control.stop.is_set() or isinstance(outcome, Cancelled):
            await writer.discard()
            if control.reason == "timeout":
                message = f"Stopped after its time limit of {job.timeout_seconds:g} s."
                await self._finish(job, JobStatus.FAILED, "timeout", message)
            elif control.reason == "shutdown":
                # We interrupted it ourselves: that attempt does not count.
                await self._finish(
                    job,
                    JobStatus.QUEUED,
                    job.error_code,
                    job.error_message,
                    attempts=Job.attempts - 1,
                )
            else:
                await self._finish(job, JobStatus.CANCELLED, None, None)
            return
        if isinstance(outcome, BaseException):
            await writer.discard()
            if isinstance(outcome, ChildDied):
                # Not the server's doing (it had not asked the child to stop): interrupted,
                # like an attempt its server's crash cut short. It counts, and a job whose
                # every attempt ends so fails as `crashed`, as the workers' rescue says.
                log.warning("job %s: %s", job.id, outcome.message)
                await self._retry_or_fail(job, "crashed", outcome.message, control)
            elif isinstance(outcome, RetryableError):
                message = files.scrub(outcome.message)
                await self._retry_or_fail(job, outcome.code, message, control)
            elif isinstance(outcome, ProcessingError):
                message = files.scrub(outcome.message)
                await self._finish(job, JobStatus.FAILED, outcome.code, message)
            elif isinstance(outcome, OSError):  # I/O trouble is worth another try
                message = files.scrub(str(outcome))
                await self._retry_or_fail(job, _io_code(outcome), message, control)
            else:
                log.error("job %s: processor %s crashed", job.id, job.processor, exc_info=outcome)
                message = files.scrub(f"{type(outcome).__name__}: {outcome}")
                await self._finish(job, JobStatus.FAILED, "processor_error", message)
            return
        result, size, sha256 = outcome
        try:
            info = await writer.commit()
        except OSError as exc:
            await writer.discard()
            await self._retry_or_fail(job, _io_code(exc), files.scrub(str(exc)), control)
            return
        published = await self._finish(
            job,
            JobStatus.SUCCEEDED,
            None,
            None,
            progress=1.0,
            result_key=info.key,
            result_filename=sanitize_filename(result.filename, "result"),
            result_content_type=result.content_type,
            result_size=size,
            result_sha256=sha256,
        )
        if not published:  # a stale attempt: its result (under its own key) goes away
            await self.storage.delete(info.key)

    async def _retry_or_fail(self, job: Job, code: str, message: str, control: RunControl) -> None:
        if job.attempts >= job.max_attempts:
            await self._finish(job, JobStatus.FAILED, code, message)
            return
        delay = backoff(job.attempts, self.retry_base_delay, self.retry_max_delay)
        await self._finish(
            job,
            JobStatus.QUEUED,
            code,
            message,
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
        control.retry_in = delay

    async def _finish(
        self,
        job: Job,
        status: JobStatus,
        code: str | None,
        message: str | None,
        **values: object,
    ) -> bool:
        """End this attempt. Fenced: refused (False) unless the job is still running *this*
        attempt, so an attempt presumed dead and retried elsewhere can never overwrite the
        newer attempt's outcome."""
        async with self.db.write() as session:
            moved = await JobRepository(session).transition(
                job.id,
                status,
                expected=[JobStatus.RUNNING],
                attempt=job.attempts,
                error_code=code,
                error_message=message,
                **values,
            )
        if moved and job.started_at is not None:
            seconds = (utcnow() - job.started_at).total_seconds()
            log.info(
                "job %s: %s after %.3fs (attempt %d)", job.id, status.value, seconds, job.attempts
            )
            if self.metrics is not None:
                self.metrics.ended(job, status, seconds)
        if not moved:
            log.warning(
                "job %s: attempt %d was no longer current when it ended as %s",
                job.id,
                job.attempts,
                status.value,
            )
        return moved

    async def _persist_progress(self, job_id: str, attempt: int, progress: _Progress) -> None:
        written = 0.0
        while True:
            await anyio.sleep(self.progress_interval)
            if progress.value - written >= 0.005:
                written = progress.value
                async with self.db.write() as session:
                    await JobRepository(session).set_progress(job_id, written, attempt)
