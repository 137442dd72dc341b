"""`create_app(settings)`: the HTTP app, made of what `compose` builds for every process plus
what only HTTP needs (routers, problem handlers, middleware, authentication, upload parsing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI

from filejob import web
from filejob.api import events, health, jobs, metrics_route, processors
from filejob.api.caller import Authenticator
from filejob.api.deps import Services
from filejob.api.downloads import route as downloads
from filejob.api.problems import install_error_handlers
from filejob.api.schemas import JobOut
from filejob.api.uploads.route import UploadPolicy
from filejob.auth.ratelimit import RateLimiter
from filejob.auth.service import KeyService
from filejob.compose import (
    admission,
    database,
    executor_for,
    executor_lock,
    job_runner,
    key_defaults,
    link_signer,
    storage_for,
    webhook_policy,
)
from filejob.config import Settings
from filejob.db.deployment import check_executor
from filejob.db.engine import Database, conninfo
from filejob.db.migrations import ensure_schema_current
from filejob.jobs.executors.base import Executor
from filejob.jobs.executors.ownership import ExecutorLock
from filejob.jobs.service import JobService
from filejob.jobs.sweeper import Sweeper
from filejob.jobs.watch import JobWatcher
from filejob.ops.logs import RequestIds
from filejob.ops.metrics import HttpMetrics, Metrics
from filejob.ops.readiness import Readiness
from filejob.processors.registry import ProcessorRegistry
from filejob.storage.base import PresignsDownloads
from filejob.storage.local import LocalStorage
from filejob.storage.s3 import S3Storage
from filejob.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("filejob")


def authenticator(settings: Settings, db: Database) -> Authenticator:
    """Raises ValueError for a FILEJOB_RATE_LIMIT_STORAGE it cannot use: at start-up, not at
    the first request."""
    return Authenticator(
        KeyService(db, key_defaults(settings)),
        RateLimiter(settings.rate_limit_storage),
        required=settings.auth_required,
    )


def upload_policy(settings: Settings, storage: LocalStorage | S3Storage) -> UploadPolicy:
    return UploadPolicy(
        max_file_bytes=settings.max_upload_bytes,
        new_spool=lambda: storage.new_spool(settings.spool_memory_bytes),
        free_bytes=storage.free_bytes,
        min_free_bytes=settings.min_free_bytes,
        max_parts=settings.max_form_parts,
        body_timeout=settings.body_timeout,
        body_deadline=settings.body_deadline,
    )


async def _compose(
    settings: Settings, db: Database, registry: ProcessorRegistry | None
) -> tuple[Services, WebhookDispatcher, Sweeper]:
    """The app's services on `db`; `registry` defaults to the installed processors."""
    storage = storage_for(settings)
    available = registry if registry is not None else ProcessorRegistry.discover()
    metrics = Metrics(db)
    executor = executor_for(
        settings, db, lambda: job_runner(settings, db, storage, available, metrics.jobs)
    )
    job_service = JobService(
        db,
        storage,
        executor,
        admission(settings, db, available),
        max_attempts=settings.max_attempts,
        max_job_seconds=settings.max_job_seconds,
    )
    links = await link_signer(settings, db)
    webhooks = WebhookDispatcher(
        db,
        lambda job: JobOut.of(job, links).model_dump_json().encode(),
        webhook_policy(settings),
    )
    watcher = JobWatcher(db)
    db.after_commit.append(watcher.poke)
    presigner = storage if isinstance(storage, PresignsDownloads) else None
    services = Services(
        settings,
        job_service,
        available,
        executor,
        authenticator(settings, db),
        links,
        watcher,
        Readiness(db, storage, executor, min_free_bytes=settings.min_free_bytes),
        metrics,
        presigner if settings.s3_presigned_downloads else None,
    )
    sweeper = Sweeper(
        job_service, result_ttl=settings.result_ttl, orphan_grace=settings.orphan_grace
    )
    return services, webhooks, sweeper


LOCK_CHECK_SECONDS = 30.0


async def _keep(lock: ExecutorLock, executor: Executor) -> None:
    """Check the executor lock now and then; if another server took it meanwhile (ours was
    lost with its database session), start no more jobs here, loudly."""
    while True:
        await asyncio.sleep(LOCK_CHECK_SECONDS)
        if not await anyio.to_thread.run_sync(lock.held):
            log.critical(
                "another filejob serve took over this database's jobs while this server's "
                "executor lock was lost: no more jobs start here; stop one of the two servers"
            )
            await executor.finish_running(0)
            return


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: Settings | None = None, *, registry: ProcessorRegistry | None = None
) -> FastAPI:
    """The app; `registry` defaults to the built-in and entry-point processors."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything started is stopped in reverse order, on every path: a start-up that
        # fails half-way (a lock held elsewhere, a bad setting) leaves nothing open either.
        async with contextlib.AsyncExitStack() as stack:
            db = database(settings)
            stack.push_async_callback(db.dispose)
            await ensure_schema_current(db)
            await check_executor(db, settings.executor)
            await db.warm()
            services, webhooks, sweeper = await _compose(settings, db, registry)
            stack.push_async_callback(webhooks.close)
            app.state.webhooks = webhooks
            app.state.services = services
            app.state.upload_policy = upload_policy(settings, services.jobs.storage)
            executor = services.executor
            lock = executor_lock(settings) if executor.runs_jobs_here else None
            if lock is not None:  # one such server per database, or jobs would run twice
                await anyio.to_thread.run_sync(lock.acquire)
                stack.callback(lock.release)
            await executor.start()
            stack.push_async_callback(executor.shutdown)
            if executor.runs_jobs_here:  # else the workers rescue each other's jobs
                await services.jobs.resume_unfinished()
            background = [
                sweeper.run_forever(settings.sweep_interval),
                webhooks.run_forever(),
                services.watcher.run_forever(),
            ]
            if settings.uses_postgres:  # other processes' changes arrive as notifications
                background.append(services.watcher.listen_forever(conninfo(settings.database_url)))
            if lock is not None:
                background.append(_keep(lock, executor))
            for work in background:
                stack.push_async_callback(_cancel, asyncio.create_task(work))
            log.info(
                "filejob ready: data in %s, jobs run %s",
                settings.storage_url or settings.data_dir,
                f"here, {settings.workers} at once" if executor.runs_jobs_here else "by workers",
            )
            yield

    app = FastAPI(
        title="filejob",
        version="0.1.0",
        summary="Upload a file, get a job; poll it; stream the result back.",
        lifespan=lifespan,
        # Starlette would answer `/v1/jobs/` with a redirect to an absolute URL built from the
        # Host header, a client-chosen host (and would carry a signed query along to it).
        redirect_slashes=False,
    )
    app.state.draining = False  # set by `DrainingServer` on SIGTERM/SIGINT
    install_error_handlers(app)
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestIds)  # outermost: every line of the request has its id
    app.include_router(jobs.upload_router)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(downloads.router)
    app.include_router(processors.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    web.mount(app)
    return app
