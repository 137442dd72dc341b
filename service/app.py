"""`create_app(settings)`: the one place where filejob is put together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from service.api import health, jobs, processors, results
from service.api.deps import Services
from service.api.upload_route import UploadPolicy
from service.config import Settings
from service.db import Database
from service.errors import install_error_handlers
from service.jobs.executors.inprocess import InProcessExecutor
from service.jobs.runner import JobRunner
from service.jobs.service import JobService
from service.jobs.sweeper import Sweeper
from service.migrations import ensure_schema_current
from service.processors.registry import ProcessorRegistry
from service.storage.local import LocalStorage

log = logging.getLogger("filejob")


def create_app(
    settings: Settings | None = None, *, registry: ProcessorRegistry | None = None
) -> FastAPI:
    """The app; `registry` defaults to the built-in and entry-point processors."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url, durable=settings.fsync, busy_timeout=settings.db_busy_timeout
        )
        await ensure_schema_current(db)
        await db.warm()
        storage = LocalStorage(settings.data_dir, fsync=settings.fsync)
        available = registry if registry is not None else ProcessorRegistry.discover()
        runner = JobRunner(
            db,
            storage,
            available,
            threads=anyio.CapacityLimiter(settings.workers),
            progress_interval=settings.progress_interval,
            retry_base_delay=settings.retry_base_delay,
            retry_max_delay=settings.retry_max_delay,
        )
        executor = InProcessExecutor(runner, settings.workers)
        job_service = JobService(
            db,
            storage,
            available,
            executor,
            max_upload_bytes=settings.max_upload_bytes,
            max_attempts=settings.max_attempts,
            max_job_seconds=settings.max_job_seconds,
        )
        app.state.services = Services(settings, job_service, available, executor)
        app.state.upload_policy = UploadPolicy(
            max_file_bytes=settings.max_upload_bytes,
            new_spool=lambda: storage.new_spool(settings.spool_memory_bytes),
            free_bytes=storage.free_bytes,
            min_free_bytes=settings.min_free_bytes,
        )
        sweeper = Sweeper(
            job_service, result_ttl=settings.result_ttl, orphan_grace=settings.orphan_grace
        )
        await executor.start()
        await job_service.resume_unfinished()
        sweeping = asyncio.create_task(sweeper.run_forever(settings.sweep_interval))
        log.info("filejob ready: data in %s, %d worker(s)", settings.data_dir, settings.workers)
        try:
            yield
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            await executor.shutdown()
            await db.dispose()

    app = FastAPI(
        title="filejob",
        version="0.1.0",
        summary="Upload a file, get a job; poll it; stream the result back.",
        lifespan=lifespan,
    )
    app.state.draining = False  # set by `DrainingServer` on SIGTERM/SIGINT
    install_error_handlers(app)
    app.include_router(jobs.upload_router)
    app.include_router(jobs.router)
    app.include_router(results.router)
    app.include_router(processors.router)
    app.include_router(health.router)
    return app
