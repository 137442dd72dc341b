"""Running one job: claim it, feed its input to the processor, publish the result, record the
outcome. Shared by every executor."""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass, field
from typing import BinaryIO

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError

from service.db import Database
from service.jobs.model import Job
from service.jobs.repository import JobRepository
from service.jobs.service import result_key
from service.jobs.states import JobStatus
from service.processors.base import Cancelled, Output, ProcessingError, Processor, ProcessorContext
from service.processors.registry import ProcessorRegistry
from service.storage.base import BlobNotFound, BlobReader, BlobWriter, Storage
from service.uploadfile import OwnedUpload

log = logging.getLogger(__name__)


@dataclass
class RunControl:
    """How an executor stops a running job: set `stop` with `reason` "cancel" or "shutdown"."""

    stop: threading.Event = field(default_factory=threading.Event)
    reason: str = "cancel"
    done: anyio.Event = field(default_factory=anyio.Event)


class HashingOutput(io.RawIOBase):
    """The processor's output stream: write-only, hashed and counted on the way to storage."""

    def __init__(self, target: BinaryIO) -> None:
        super().__init__()
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.sha256.update(data)
        self.size += len(data)
        self._target.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        """Processors (and libraries they use) may close it; the runner closes the target."""


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
    ) -> None:
        self.db = db
        self.storage = storage
        self.registry = registry
        self.threads = threads
        self.progress_interval = progress_interval

    async def run(self, job_id: str, upload: OwnedUpload | None, control: RunControl) -> None:
        """Run the job to a final state (or back to `queued` on shutdown). Never raises for
        a job's own failure; releases `upload` on every path."""
        try:
            async with self.db.write() as session:
                repo = JobRepository(session)
                claimed = await repo.start(job_id)
                job = await repo.get(job_id) if claimed else None
            if job is None:
                return  # cancelled or deleted while it waited
            try:
                await self._run_claimed(job, upload, control)
            except Exception as exc:
                # A bug or an unexpected storage error: the job still gets a final state.
                log.exception("job %s: runner error", job_id)
                await self._finish(job_id, JobStatus.FAILED, "internal_error", type(exc).__name__)
        finally:
            if upload is not None:
                await upload.release()

    async def _run_claimed(self, job: Job, upload: OwnedUpload | None, control: RunControl) -> None:
        processor = self.registry.get(job.processor)
        if processor is None:
            await self._finish(
                job.id,
                JobStatus.FAILED,
                "unknown_processor",
                f"Processor {job.processor!r} is not installed on this server.",
            )
            return
        try:
            params = processor.Params.model_validate(job.params)
        except ValidationError as exc:
            await self._finish(job.id, JobStatus.FAILED, "invalid_params", str(exc))
            return
        try:
            reader = None if upload is not None else await self._open_input(job)
        except BlobNotFound:
            await self._finish(
                job.id, JobStatus.FAILED, "input_missing", "The stored input is missing."
            )
            return
        try:
            source = upload.file if upload is not None else reader.file  # type: ignore[union-attr]
            writer = await self.storage.create(result_key(job.id))
            await self._process(job, processor, params, source, writer, control)
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
        writer: BlobWriter,
        control: RunControl,
    ) -> None:
        output = HashingOutput(writer.file)
        progress = _Progress()
        ctx = ProcessorContext(
            input=source,
            input_size=job.input_size,
            input_filename=job.input_filename,
            input_content_type=job.input_content_type,
            output=output,
            cancel_event=control.stop,
            on_progress=progress.set,
        )
        source.seek(0)
        outcome: Output | BaseException
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._persist_progress, job.id, progress)
                try:
                    outcome = await anyio.to_thread.run_sync(
                        processor.run, ctx, params, limiter=self.threads, abandon_on_cancel=False
                    )
                except Exception as exc:  # the processor's failure is the job's, not ours
                    outcome = exc
                finally:
                    tg.cancel_scope.cancel()
        except BaseException:
            await writer.discard()
            raise
        await self._settle(job, outcome, output, writer, control)

    async def _settle(
        self,
        job: Job,
        outcome: Output | BaseException,
        output: HashingOutput,
        writer: BlobWriter,
        control: RunControl,
    ) -> None:
        if control.stop.is_set() or isinstance(outcome, Cancelled):
            await writer.discard()
            if control.reason == "shutdown":
                await self._finish(job.id, JobStatus.QUEUED, None, None)
            else:
                await self._finish(job.id, JobStatus.CANCELLED, None, None)
            return
        if isinstance(outcome, BaseException):
            await writer.discard()
            if isinstance(outcome, ProcessingError):
                code, message = outcome.code, outcome.message
            else:
                log.error("job %s: processor %s crashed", job.id, job.processor, exc_info=outcome)
                code, message = "processor_error", f"{type(outcome).__name__}: {outcome}"
            await self._finish(job.id, JobStatus.FAILED, code, message)
            return
        try:
            output.flush()
            info = await writer.commit()
        except OSError as exc:
            await writer.discard()
            await self._finish(job.id, JobStatus.FAILED, "storage_error", str(exc))
            return
        await self._finish(
            job.id,
            JobStatus.SUCCEEDED,
            None,
            None,
            progress=1.0,
            result_key=info.key,
            result_filename=outcome.filename,
            result_content_type=outcome.content_type,
            result_size=output.size,
            result_sha256=output.sha256.hexdigest(),
        )

    async def _finish(
        self,
        job_id: str,
        status: JobStatus,
        code: str | None,
        message: str | None,
        **values: object,
    ) -> None:
        async with self.db.write() as session:
            moved = await JobRepository(session).transition(
                job_id,
                status,
                expected=[JobStatus.RUNNING],
                error_code=code,
                error_message=message,
                **values,
            )
        if not moved:
            log.warning("job %s: was no longer running when it ended as %s", job_id, status)

    async def _persist_progress(self, job_id: str, progress: _Progress) -> None:
        written = 0.0
        while True:
            await anyio.sleep(self.progress_interval)
            if progress.value - written >= 0.005:
                written = progress.value
                async with self.db.write() as session:
                    await JobRepository(session).set_progress(job_id, written)
