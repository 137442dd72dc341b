"""Prometheus metrics (prometheus-client), one registry per app or worker process.

Three sources, so that the figures hold however many processes there are:
- counted where it happens: HTTP requests and bytes (this API server), job outcomes, durations
  and queue waits (the process that ran the job: the server in-process, else each worker,
  which serves its own `/metrics` with `filejob worker --metrics-port`);
- read from the database when scraped: jobs queued and running, storage bytes used. Those are
  the whole deployment's, identical from every API server.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filejob.db.engine import Database
from filejob.jobs.model import Job
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a quick checksum to the longest allowed job.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class JobMetrics:
    """The runner's `JobEvents`: counts final states and their durations, and first
    attempts' queue waits (retries wait on purpose)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "filejob_jobs_finished",
            "Jobs that reached a final state, by processor and status.",
            ["processor", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "filejob_job_duration_seconds",
            "Seconds from an attempt's start to the job's final state.",
            ["processor"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "filejob_job_queue_wait_seconds",
            "Seconds a job waited between being accepted and its first attempt's start.",
            ["processor"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def started(self, job: Job) -> None:
        if job.started_at is not None and job.attempts == 1:
            wait = (job.started_at - job.created_at).total_seconds()
            self.queue_wait.labels(job.processor).observe(max(0.0, wait))

    def ended(self, job: Job, status: JobStatus, seconds: float) -> None:
        if status.is_final:
            self.finished.labels(job.processor, status.value).inc()
            self.duration.labels(job.processor).observe(seconds)


class Metrics:
    """An API server's metrics."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.registry = CollectorRegistry()
        self.jobs = JobMetrics(self.registry)
        self.requests = Counter(
            "filejob_http_requests",
            "HTTP requests, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "filejob_http_request_duration_seconds",
            "Seconds until the response started, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.uploaded = Counter(
            "filejob_uploaded_bytes", "Bytes of accepted uploads.", registry=self.registry
        )
        self.downloaded = Counter(
            "filejob_downloaded_bytes", "Bytes of results sent.", registry=self.registry
        )
        self.active = Gauge(
            "filejob_jobs",
            "Jobs queued or running now (all servers).",
            ["status"],
            registry=self.registry,
        )
        self.stored = Gauge(
            "filejob_storage_bytes",
            "Bytes of inputs and results kept in storage (all servers).",
            registry=self.registry,
        )

    async def render(self) -> bytes:
        """The exposition text, with the database-wide gauges read now."""
        async with self.db.read() as session:
            queued, running, stored = await JobRepository(session).totals()
        self.active.labels(JobStatus.QUEUED.value).set(queued)
        self.active.labels(JobStatus.RUNNING.value).set(running)
        self.stored.set(stored)
        return generate_latest(self.registry)


class HttpMetrics:
    """ASGI middleware: counts requests by route template (never the raw path, whose ids
    would make a series per job)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None)
        metrics: Metrics | None = services.metrics if services is not None else None
        started = time.perf_counter()
        status = 500

        async def counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if metrics is not None:
                    metrics.request_seconds.labels(_route(scope)).observe(
                        time.perf_counter() - started
                    )
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            if metrics is not None:
                metrics.requests.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
