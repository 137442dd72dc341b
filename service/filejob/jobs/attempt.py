"""One attempt of a claimed job, supervised: its input opened, the processor run in a worker
thread or (isolation "process") in a pooled worker process, its progress saved, its deadline
and its stop enforced, its output stored or discarded. What the attempt came to is returned as an
`AttemptEnd`; recording that in the job row is the runner's part (runner.py)."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
from pydantic import BaseModel

from filejob.db.engine import Database
from filejob.jobs.control import StopReason, StopSignal
from filejob.jobs.error_text import AttemptFiles
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.isolation import STOP_GRACE, WorkerPool
from filejob.jobs.model import Job
from filejob.jobs.output import HashingOutput
from filejob.jobs.repository import JobRepository
from filejob.jobs.storage_keys import result_key
from filejob.processors.base import Cancelled, Output, Processor, ProcessorContext
from filejob.storage.base import BlobNotFound, BlobWriter, Storage

log = logging.getLogger(__name__)

# What the processor's work returns: what it said about its output, the output's size, sha256.
WorkResult = tuple[Output, int, str]


@dataclass(frozen=True)
class NotStarted:
    """The attempt could not start, for good (its input is gone): the job fails so."""

    code: str
    message: str


@dataclass(frozen=True)
class Stopped:
    """The processor was stopped (or stopped itself with `Cancelled`); its output is gone."""

    reason: StopReason


@dataclass(frozen=True)
class Raised:
    """The processor, its process or storing its output raised `error`; the output is gone.
    `files` takes the attempt's paths out of the error's text."""

    error: Exception
    files: AttemptFiles


@dataclass(frozen=True)
class Produced:
    """The processor returned, and its output is stored under `key` (not yet named by the
    job's row)."""

    key: str
    output: Output
    size: int
    sha256: str


AttemptEnd = NotStarted | Stopped | Raised | Produced


@dataclass(frozen=True)
class _Work:
    """The attempt's work, ready to call in a worker thread, and where its output goes."""

    call: Callable[[], WorkResult]
    writer: BlobWriter
    files: AttemptFiles


class _Progress:
    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value


def _input_meta(job: Job) -> dict[str, Any]:
    """What a processor is told about its input, in this process or a child."""
    return {
        "input_size": job.input_size,
        "input_filename": job.input_filename,
        "input_content_type": job.input_content_type,
    }


class AttemptSupervisor:
    """Runs attempts to their end; never writes a job's state, only its progress."""

    def __init__(
        self,
        db: Database,
        storage: Storage,
        *,
        threads: anyio.CapacityLimiter,
        progress_interval: float,
        isolation: WorkerPool | None = None,
    ) -> None:
        # Processors that ask for a process of their own get one where the child can be given
        # a path to read (a local blob, or a local copy of a remote one) and a path to fill.
        self._local_files = storage.abilities.local_files
        self._staged_files = storage.abilities.stages_local_copies
        self.db = db
        self.storage = storage
        self.threads = threads
        self.progress_interval = progress_interval
        # Those processes: as many warm ones as attempts run at once (none started yet).
        self.isolation = isolation or WorkerPool(int(threads.total_tokens))

    async def close(self) -> None:
        """End the pooled worker processes (the owner's shutdown, once no attempt runs)."""
        with anyio.CancelScope(shield=True):  # also when the owner is being cancelled
            await anyio.to_thread.run_sync(self.isolation.close)

    async def run(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        upload: IncomingFile | None,
        stop: StopSignal,
        *,
        spent: float = 0.0,
    ) -> AttemptEnd:
        """Run the claimed `job`'s current attempt, reading `upload` if there is one (the
        caller releases it) or else the stored input. Raises only for trouble of the
        server's own (storage, database), never for the processor's. `spent`: seconds of
        the attempt's time already used (an import's fetch)."""
        limit = max(job.timeout_seconds - spent, 0.0)
        if upload is not None:
            return await self._process(job, processor, params, upload.file, stop, limit)
        try:
            if not job.input_key:
                raise BlobNotFound(job.id)
            reader = await self.storage.open(job.input_key)
        except BlobNotFound:
            return NotStarted("input_missing", "The stored input is missing.")
        try:
            return await self._process(job, processor, params, reader.file, stop, limit)
        finally:
            reader.close()

    async def _process(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        source: BinaryIO,
        stop: StopSignal,
        limit: float,
    ) -> AttemptEnd:
        async with contextlib.AsyncExitStack() as stack:
            progress = _Progress()
            input_path = None
            if processor.isolation == "process":
                input_path = await self._input_path(job, source, stack)
            if input_path is not None:
                work = await self._in_child(job, processor, params, stop, progress, input_path)
            else:
                work = await self._in_thread(job, processor, params, source, stop, progress)
            return await self._supervise(job, work, stop, progress, limit)

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

    async def _in_child(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        stop: StopSignal,
        progress: _Progress,
        input_path: str,
    ) -> _Work:
        """The work as a pooled process that reads `input_path` and fills a named temp."""
        files = self._local_files or self._staged_files
        assert files is not None
        writer = await files.create_named(result_key(job.id, job.attempts))
        call = functools.partial(
            self.isolation.run,
            processor,
            params.model_dump(mode="json"),
            _input_meta(job),
            input_path,
            str(writer.path),
            stop.event,
            progress.set,
        )
        return _Work(call, writer, AttemptFiles(input_path, str(writer.path)))

    async def _in_thread(
        self,
        job: Job,
        processor: Processor,
        params: BaseModel,
        source: BinaryIO,
        stop: StopSignal,
        progress: _Progress,
    ) -> _Work:
        """The work as a call in a worker thread, reading the (possibly still open) input."""
        writer = await self.storage.create(result_key(job.id, job.attempts))
        output = HashingOutput(writer.file)
        ctx = ProcessorContext(
            input=source,
            output=output.as_binary_io(),
            cancel_event=stop.event,
            on_progress=progress.set,
            **_input_meta(job),
        )
        source.seek(0)

        def call() -> WorkResult:
            result = processor.run(ctx, params)
            output.flush()
            return result, output.size, output.sha256.hexdigest()

        return _Work(call, writer, AttemptFiles.of(source, writer.file))

    async def _supervise(
        self, job: Job, work: _Work, stop: StopSignal, progress: _Progress, limit: float
    ) -> AttemptEnd:
        """Call the work in a worker thread while its progress is saved and its deadline
        (`limit` seconds from now) watched; then keep its output or discard it."""
        produced: WorkResult | Exception = Cancelled()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._save_progress, job.id, job.attempts, progress)
                with anyio.CancelScope() as processing:
                    tg.start_soon(self._enforce_stop, limit, stop, processing)
                    try:
                        produced = await anyio.to_thread.run_sync(
                            work.call, limiter=self.threads, abandon_on_cancel=True
                        )
                    except Exception as exc:  # the processor's failure is the job's, not ours
                        produced = exc
                if processing.cancelled_caught:
                    log.warning(
                        "job %s: processor ignored the stop; its thread is abandoned", job.id
                    )
                tg.cancel_scope.cancel()
        except BaseException:
            await work.writer.discard()
            raise
        return await self._keep_or_discard(produced, work, stop)

    async def _keep_or_discard(
        self, produced: WorkResult | Exception, work: _Work, stop: StopSignal
    ) -> AttemptEnd:
        if stop.is_set() or isinstance(produced, Cancelled):
            await work.writer.discard()
            # Cancelled with no stop asked for: the processor's own doing, taken as a cancel.
            return Stopped(stop.reason or StopReason.CANCEL)
        if isinstance(produced, Exception):
            await work.writer.discard()
            return Raised(produced, work.files)
        output, size, sha256 = produced
        try:
            info = await work.writer.commit()
        except OSError as exc:
            await work.writer.discard()
            return Raised(exc, work.files)
        return Produced(info.key, output, size, sha256)

    async def _enforce_stop(
        self, limit: float, stop: StopSignal, processing: anyio.CancelScope
    ) -> None:
        """Stop the processor at its deadline; if it has not returned `STOP_GRACE` seconds
        after being told to stop (timeout, cancel or shutdown), stop waiting for it. Threads
        cannot be killed: an abandoned one runs on until it next checks or writes, and its
        output is discarded."""
        deadline = anyio.current_time() + limit
        while not stop.is_set():
            if anyio.current_time() >= deadline:
                stop.request(StopReason.TIMEOUT)
                break
            await anyio.sleep(0.05)
        await anyio.sleep(STOP_GRACE)
        processing.cancel()

    async def _save_progress(self, job_id: str, attempt: int, progress: _Progress) -> None:
        written = 0.0
        while True:
            await anyio.sleep(self.progress_interval)
            if progress.value - written >= 0.005:
                written = progress.value
                async with self.db.write() as session:
                    await JobRepository(session).set_progress(job_id, written, attempt)
