"""Composition for every process: `Settings` in, the pieces `filejob serve`, `filejob worker`
and the CLI are made of out (the opened database, storage, runner, executor, admission,
signing, the job service, its sweeper, webhook delivery). Each choice (which storage, which
executor, which lock) is made here, once; the HTTP app adds only what HTTP needs (app.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from filejob.auth.links import LinkSigner
from filejob.auth.ratelimit import RateLimiter
from filejob.auth.service import KeyDefaults
from filejob.config import Settings
from filejob.db.deployment import RefusedToStart, check_executor, link_secret
from filejob.db.engine import Database, conninfo, sqlite_threads_stopped
from filejob.db.migrations import ensure_schema_current
from filejob.jobs.admission import Admission, CallbackRules
from filejob.jobs.events import JobEvents
from filejob.jobs.executors.base import Executor
from filejob.jobs.executors.inprocess import InProcessExecutor
from filejob.jobs.executors.ownership import AdvisoryLock, DatabaseFileLock, ExecutorLock
from filejob.jobs.executors.procrastinate import ProcrastinateExecutor
from filejob.jobs.imports import ImportPolicy
from filejob.jobs.isolation import Recycling, WorkerPool
from filejob.jobs.model import Job
from filejob.jobs.poll_reads import poll_reads_for
from filejob.jobs.runner import JobRunner
from filejob.jobs.service import JobService
from filejob.jobs.sweeper import Sweeper
from filejob.processors.registry import ProcessorRegistry
from filejob.resumable.repository import reserved_bytes
from filejob.resumable.service import ResumableUploads
from filejob.storage.base import Storage
from filejob.storage.local import LocalStorage
from filejob.storage.s3 import S3Storage
from filejob.webhooks.addresses import parse_callback_url
from filejob.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy

log = logging.getLogger("filejob")


def database(settings: Settings) -> Database:
    """The database, the same way in every process."""
    return Database(
        settings.database_url, durable=settings.fsync, busy_timeout=settings.db_busy_timeout
    )


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Database]:
    """The database, its schema current and its executor mode this deployment's, warmed up;
    disposed on exit (also when a check fails)."""
    db = database(settings)
    try:
        await ensure_schema_current(db)
        await check_executor(db, settings.executor)
        await db.warm()
        yield db
    finally:
        await db.dispose()


def storage_for(settings: Settings) -> LocalStorage | S3Storage:
    """The one place the storage backend is chosen (FILEJOB_STORAGE_URL); says in the log
    what the chosen one can do (its `abilities`, probed once when it was made)."""
    storage = _storage(settings)
    can = storage.abilities.names()
    log.info("storage: %s (%s)", type(storage).__name__, ", ".join(can) or "the protocol only")
    return storage


def _storage(settings: Settings) -> LocalStorage | S3Storage:
    url = settings.storage_url
    if url.startswith("s3://"):
        return S3Storage.from_url(
            url,
            settings.data_dir,
            endpoint=settings.s3_endpoint or None,
            region=settings.s3_region or None,
            access_key_id=settings.s3_access_key_id or None,
            secret_access_key=settings.s3_secret_access_key.get_secret_value() or None,
            public_endpoint=settings.s3_public_endpoint or None,
        )
    root = Path(url.removeprefix("file://")) if url else settings.data_dir
    return LocalStorage(root, fsync=settings.fsync)


def job_runner(
    settings: Settings,
    db: Database,
    storage: Storage,
    registry: ProcessorRegistry,
    events: JobEvents | None = None,
    *,
    concurrency: int | None = None,
) -> JobRunner:
    """The runner of jobs in this process, `concurrency` (default FILEJOB_WORKERS) at once,
    telling `events` (the metrics, `ops.metrics.JobMetrics`) how they go. Its owner closes it
    when it shuts down (the pooled worker processes of isolated processors)."""
    at_once = concurrency or settings.workers
    return JobRunner(
        db,
        storage,
        registry,
        threads=anyio.CapacityLimiter(at_once),
        progress_interval=settings.progress_interval,
        retry_base_delay=settings.retry_base_delay,
        retry_max_delay=settings.retry_max_delay,
        events=events,
        isolation=WorkerPool(
            at_once, Recycling(settings.isolation_max_jobs, settings.isolation_max_rss_growth)
        ),
        imports=ImportPolicy.for_settings(settings, reserved=reserved_bytes),
    )


def executor_for(settings: Settings, db: Database, runner: Callable[[], JobRunner]) -> Executor:
    """The one place the executor is chosen (FILEJOB_EXECUTOR); only the in-process one
    needs a `runner`."""
    if settings.executor == "procrastinate":
        return ProcrastinateExecutor(db)  # `filejob worker` processes run the jobs
    return InProcessExecutor(runner(), settings.workers)


def job_service(
    settings: Settings,
    db: Database,
    storage: Storage,
    executor: Executor,
    registry: ProcessorRegistry,
) -> JobService:
    """The jobs' use cases (accept, read, cancel, expire, resume), admitting by `registry`."""
    return JobService(
        db,
        storage,
        executor,
        admission(settings, db, registry),
        max_attempts=settings.max_attempts,
        max_job_seconds=settings.max_job_seconds,
        poll_reads=poll_reads_for(db),
    )


def sweeper(
    settings: Settings, jobs: JobService, uploads: ResumableUploads | None = None
) -> Sweeper:
    """The housekeeping of `jobs`: expired results, stranded jobs, orphaned blobs and temp
    files, expired idempotency keys; and of resumable `uploads` where they are taken."""
    return Sweeper(
        jobs, result_ttl=settings.result_ttl, orphan_grace=settings.orphan_grace, uploads=uploads
    )


def resumable_uploads(settings: Settings, jobs: JobService) -> ResumableUploads:
    """Resumable (tus) uploads whose last byte makes a job through `jobs`."""
    return ResumableUploads.for_settings(settings, jobs)


def webhooks(settings: Settings, db: Database, render: Callable[[Job], bytes]) -> WebhookDispatcher:
    """Delivers job callbacks, each body `render(job)`; close it when done."""
    return WebhookDispatcher(db, render, webhook_policy(settings))


def admission(settings: Settings, db: Database, registry: ProcessorRegistry) -> Admission:
    return Admission(
        db,
        registry,
        max_upload_bytes=settings.max_upload_bytes,
        max_filename_bytes=settings.max_filename_length,
        callbacks=CallbackRules(
            check_url=partial(parse_callback_url, allow_private=settings.webhook_allow_private),
            anonymous_can_sign=bool(settings.webhook_secret.get_secret_value()),
        ),
        # Uploads in progress count against the quota of `POST /v1/jobs` (their table is
        # there whether or not uploads are taken).
        reserved=reserved_bytes,
        imports=ImportPolicy.for_settings(settings),
    )


def key_defaults(settings: Settings) -> KeyDefaults:
    return KeyDefaults(
        max_active_jobs=settings.max_active_jobs,
        max_storage_bytes=settings.max_storage_bytes,
        rate_limit=settings.rate_limit,
    )


async def link_signer(settings: Settings, db: Database) -> LinkSigner:
    """Signs with FILEJOB_SECRET_KEY, or else with the deployment's own secret, generated
    once and kept in the database: every server and every restart verifies every link."""
    keys = settings.secret_keys or [await link_secret(db)]
    return LinkSigner(keys, settings.result_link_ttl, settings.max_result_link_ttl)


def executor_lock(settings: Settings) -> ExecutorLock:
    """The lock an in-process executor holds (one per database, see `ownership`)."""
    if settings.uses_postgres:
        return AdvisoryLock(conninfo(settings.database_url))
    return DatabaseFileLock(Path(make_url(settings.database_url).database or "filejob.db"))


async def preflight(settings: Settings) -> None:
    """What the lifespan refuses to start with, checked before a server starts, so that
    `filejob serve` can say it in one line: a stale schema, an executor the database does not
    record, another in-process server already running this database's jobs."""
    try:
        RateLimiter(settings.rate_limit_storage)  # builds its store; connects on first use
    except ValueError as exc:
        raise RefusedToStart(str(exc)) from None
    try:
        async with opened(settings):
            pass
    except DBAPIError as exc:  # none there, or unreachable: no traceback for that
        await sqlite_threads_stopped()  # `opened` has disposed of the database by now
        shown = make_url(settings.database_url).render_as_string(hide_password=True)
        raise RefusedToStart(
            f"cannot use the database {shown}: {exc.orig} (is FILEJOB_DATA_DIR or "
            "FILEJOB_DATABASE_URL right, and has `filejob db upgrade` run?)"
        ) from None
    if settings.executor == "inprocess":
        lock = executor_lock(settings)
        await anyio.to_thread.run_sync(lock.acquire)
        lock.release()


def webhook_policy(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(
        allow_private=settings.webhook_allow_private,
        timeout=settings.webhook_timeout,
        max_attempts=settings.webhook_max_attempts,
        retry_delay=settings.webhook_retry_delay,
        anonymous_secret=settings.webhook_secret.get_secret_value() or None,
    )
