"""Transient failures are retried with backoff up to max_attempts; permanent ones are not;
a job that keeps killing the server ends `crashed`."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from filejob.app import create_app
from filejob.config import Settings
from filejob.jobs.model import Job
from filejob.jobs.runner import backoff
from tests.support.jobs import submit
from tests.support.processors import test_registry
from tests.support.settings import PROFILES
from tests.support.storage import stored


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Recovery and retries hold on both profiles (a restart re-reads PostgreSQL and S3)."""
    return request.param


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_attempts": 3}


async def flaky(client: httpx.AsyncClient, failures: int, kind: str, **fields: Any) -> str:
    params = {"key": uuid.uuid4().hex, "failures": failures, "kind": kind}
    response = await submit(client, b"payload", "flaky", params=params, **fields)
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return (await client.get(f"/v1/jobs/{job_id}")).json()


@pytest.mark.parametrize("kind", ["retryable", "oserror", "enospc"])
async def test_transient_failures_are_retried_until_success(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path, kind: str
) -> None:
    job_id = await flaky(client, 2, kind)
    await run_until_idle()
    body = await job(client, job_id)
    assert body["status"] == "succeeded" and body["attempts"] == 3
    assert body["error"] is None and body["next_attempt_at"] is None
    assert (await client.get(body["result"]["url"])).content == b"payload"
    assert len(await stored(app)) == 2  # no partial result from the failed attempts


@pytest.mark.parametrize(
    ("kind", "code"), [("retryable", "flaky"), ("oserror", "io_error"), ("enospc", "storage_full")]
)
async def test_attempts_run_out(
    client: httpx.AsyncClient, run_until_idle: Any, kind: str, code: str
) -> None:
    job_id = await flaky(client, 99, kind)
    await run_until_idle()
    body = await job(client, job_id)
    assert body["status"] == "failed" and body["attempts"] == 3
    assert body["error"]["code"] == code


async def test_permanent_error_fails_at_once(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = await flaky(client, 99, "permanent")
    await run_until_idle()
    body = await job(client, job_id)
    assert body["status"] == "failed" and body["attempts"] == 1
    assert body["error"]["code"] == "permanent"


async def test_per_job_max_attempts_is_capped_by_config(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    fewer = await flaky(client, 99, "retryable", max_attempts=1)
    more = await flaky(client, 99, "retryable", max_attempts=50)
    await run_until_idle()
    assert (await job(client, fewer))["attempts"] == 1
    capped = await job(client, more)
    assert capped["max_attempts"] == 3 and capped["attempts"] == 3
    bad = await submit(client, b"x", "checksum", max_attempts=0)
    assert bad.status_code == 422


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    delays = [backoff(n, 1.0, 100.0) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        full = min(100.0, 2 ** (n - 1))
        assert full / 2 <= delay <= full
    assert backoff(20, 1.0, 100.0) <= 100.0


async def test_waiting_job_shows_last_error_and_when_it_is_due(
    settings: Settings,
) -> None:
    settings.executor = "inprocess"  # own retry timers and restarts; workers: tests/system/workers
    settings.retry_base_delay = settings.retry_max_delay = 60
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            job_id = await flaky(client, 5, "retryable")
            await app.state.services.executor.run_until_idle(retries=False)
            body = await job(client, job_id)
            assert body["status"] == "queued" and body["attempts"] == 1
            assert body["error"]["code"] == "flaky"
            due = datetime.fromisoformat(body["next_attempt_at"])
            assert due > datetime.fromisoformat(body["started_at"])
            assert app.state.services.executor.waiting_for_retry == 1
            # Cancelling a job that waits for its retry works like any queued job.
            assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
            assert (await job(client, job_id))["status"] == "cancelled"


async def _leave_as_running(app: Any, client: httpx.AsyncClient, attempts: int) -> str:
    job_id = (await submit(client, b"poison", "checksum")).json()["id"]
    await app.state.services.executor.run_until_idle()
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="running", attempts=attempts, result_key=None)
        )
    return job_id


async def test_job_that_keeps_killing_the_server_ends_crashed(settings: Settings) -> None:
    settings.executor = "inprocess"  # own retry timers and restarts; workers: tests/system/workers
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            poison = await _leave_as_running(app, client, attempts=3)
            survivor = await _leave_as_running(app, client, attempts=1)
    # As if the process had died twice more mid-job: the next start must not run it again.
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await app.state.services.executor.run_until_idle()
            crashed = await job(client, poison)
            assert crashed["status"] == "failed" and crashed["error"]["code"] == "crashed"
            resumed = await job(client, survivor)
            assert resumed["status"] == "succeeded" and resumed["attempts"] == 2
