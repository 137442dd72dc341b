"""`create_app(settings)`: the HTTP app, made of what `compose` builds for every process plus
what only HTTP needs (routers, problem handlers, middleware, authentication, upload parsing)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI

from filejob import web
from filejob.api import (
    attempts,
    docs_page,
    events,
    health,
    jobs,
    limits,
    metrics_route,
    openapi,
    processors,
)
from filejob.api.caller import Authenticator
from filejob.api.deps import Services
from filejob.api.downloads import route as downloads
from filejob.api.fast_poll import FastPoll
from filejob.api.problems import install_error_handlers
from filejob.api.schemas import JobOut
from filejob.api.tus import route as tus
from filejob.api.uploads import submit
from filejob.api.uploads.route import UploadPolicy
from filejob.auth.ratelimit import RateLimiter
from filejob.auth.service import KeyService
from filejob.compose import (
    executor_for,
    executor_lock,
    job_runner,
    job_service,
    key_defaults,
    link_signer,
    opened,
    resumable_uploads,
    storage_for,
    sweeper,
    webhooks,
)
from filejob.config import Settings
from filejob.db.engine import Database, conninfo
from filejob.jobs.executors.base import Executor
from filejob.jobs.executors.ownership import ExecutorLock
from filejob.jobs.sweeper import Sweeper
from filejob.jobs.watch import JobWatcher
from filejob.ops.logs import RequestIds
from filejob.ops.metrics import HttpMetrics, Metrics
from filejob.ops.readiness import Readiness
from filejob.processors.registry import ProcessorRegistry
from filejob.resumable.service import ResumableUploads
from filejob.storage.base import Storage
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


def upload_policy(settings: Settings, storage: Storage) -> UploadPolicy:
    return UploadPolicy(
        max_file_bytes=settings.max_upload_bytes,
        new_spool=lambda: storage.new_spool(settings.spool_memory_bytes),
        free_bytes=storage.free_bytes,
        min_free_bytes=settings.min_free_bytes,
        max_parts=settings.max_form_parts,
        body_timeout=settings.body_timeout,
        body_deadline=settings.body_deadline,
    )


@dataclass(frozen=True)
class HttpParts:
    """What the lifespan builds on the open database: what requests use (`services`,
    `uploads`) and what runs beside them (`webhooks`, `sweeper`)."""

    services: Services
    uploads: UploadPolicy
    webhooks: WebhookDispatcher
    sweeper: Sweeper
    resumable: ResumableUploads


async def _http_parts(
    settings: Settings, db: Database, registry: ProcessorRegistry | None
) -> HttpParts:
    """The app's parts on `db`: `compose`'s, plus what only HTTP needs; `registry` defaults
    to the installed processors."""
    storage = storage_for(settings)
    available = registry if registry is not None else ProcessorRegistry.discover()
    metrics = Metrics(db)
    executor = executor_for(
        settings, db, lambda: job_runner(settings, db, storage, available, metrics.jobs)
    )
    jobs = job_service(settings, db, storage, executor, available)
    links = await link_signer(settings, db)
    dispatcher = webhooks(
        settings, db, lambda job: JobOut.of(job, links).model_dump_json().encode()
    )
    watcher = JobWatcher(db)
    db.after_commit.append(watcher.poke)
    presigner = storage.abilities.presigns_downloads
    services = Services(
        settings,
        jobs,
        available,
        executor,
        authenticator(settings, db),
        links,
        watcher,
        Readiness(db, storage, executor, min_free_bytes=settings.min_free_bytes),
        metrics,
        presigner if settings.s3_presigned_downloads else None,
    )
    resumable = resumable_uploads(settings, jobs)
    return HttpParts(
        services,
        upload_policy(settings, storage),
        dispatcher,
        sweeper(settings, jobs, resumable),
        resumable,
    )


@asynccontextmanager
async def _executing(settings: Settings, services: Services) -> AsyncIterator[ExecutorLock | None]:
    """The executor taking jobs. Where jobs run here, it holds the executor lock (yielded; None
    where workers run them) and resumes what a previous server left unfinished. On exit,
    running jobs are interrupted (back to `queued`), then the lock is released."""
    executor = services.executor
    lock = executor_lock(settings) if executor.runs_jobs_here else None
    async with contextlib.AsyncExitStack() as stack:
        if lock is not None:  # one such server per database, or jobs would run twice
            await anyio.to_thread.run_sync(lock.acquire)
            stack.callback(lock.release)
        await executor.start()
        stack.push_async_callback(executor.shutdown)
        if executor.runs_jobs_here:  # else the workers rescue each other's jobs
            await services.jobs.resume_unfinished()
        yield lock


@asynccontextmanager
async def _running(name: str, loop: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """`loop` as a background task named `name` while the context is open; cancelled, and
    waited for, on exit."""
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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


def _loops(
    settings: Settings, parts: HttpParts, lock: ExecutorLock | None
) -> dict[str, Coroutine[Any, Any, None]]:
    """The app's background loops, by task name, in the order they start (they stop in
    reverse)."""
    watcher = parts.services.watcher
    loops = {
        "sweeper": parts.sweeper.run_forever(settings.sweep_interval),
        "webhook deliveries": parts.webhooks.run_forever(),
        "job watch": watcher.run_forever(),
    }
    if settings.uses_postgres:  # other processes' changes arrive as notifications
        loops["job notifications"] = watcher.listen_forever(conninfo(settings.database_url))
    if lock is not None:
        loops["executor lock watch"] = _keep(lock, parts.services.executor)
    return loops


def create_app(
    settings: Settings | None = None, *, registry: ProcessorRegistry | None = None
) -> FastAPI:
    """The app; `registry` defaults to the built-in and entry-point processors."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Whatever was entered is left in reverse order, on every path: a start-up that fails
        # half-way (a lock held elsewhere, a bad setting) leaves nothing open either.
        async with contextlib.AsyncExitStack() as stack:
            db = await stack.enter_async_context(opened(settings))
            parts = await _http_parts(settings, db, registry)
            stack.push_async_callback(parts.webhooks.close)
            stack.callback(parts.services.jobs.poll_reads.close)
            app.state.services, app.state.webhooks = parts.services, parts.webhooks
            app.state.upload_policy = parts.uploads
            app.state.resumable = parts.resumable
            lock = await stack.enter_async_context(_executing(settings, parts.services))
            for name, loop in _loops(settings, parts, lock).items():
                await stack.enter_async_context(_running(name, loop))
            runs_here = parts.services.executor.runs_jobs_here
            log.info(
                "filejob ready: data in %s, jobs run %s",
                settings.storage_url or settings.data_dir,
                f"here, {settings.workers} at once" if runs_here else "by workers",
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
        generate_unique_id_function=openapi.operation_id,
        docs_url=None,  # FastAPI's pages load their assets from a CDN; see `docs_page`
        redoc_url=None,
    )
    openapi.install(app)
    docs_page.mount(app)
    app.state.draining = False  # set by `DrainingServer` on SIGTERM/SIGINT
    install_error_handlers(app)
    app.add_middleware(FastPoll)  # innermost: inside the request ids and the metrics
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestIds)  # outermost: every line of the request has its id
    app.include_router(submit.router)
    app.include_router(tus.router)
    app.include_router(jobs.router)
    app.include_router(attempts.router)
    app.include_router(events.router)
    app.include_router(events.events_router)
    app.include_router(downloads.router)
    app.include_router(processors.router)
    app.include_router(limits.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    web.mount(app)
    return app
