"""GET /v1/jobs/{id}/attempts: every attempt of a job, each with how it ended, recorded in the
transactions that claim and settle the job; owner-isolated; deleted with the job."""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import procrastinate
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text, update

from filejob.app import create_app
from filejob.config import Settings
from filejob.db.engine import conninfo
from filejob.jobs.attempts import JobAttempt
from filejob.jobs.model import Job, utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.sweeper import Sweeper
from filejob.worker import rescue_stalled
from tests.support.auth import SECRET, tenant
from tests.support.jobs import running_gated, submit, wait_for_status
from tests.support.processors import GATES, test_registry
from tests.support.settings import PROFILES
from tests.support.wait import wait_until_async


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The history is written by the runner on both profiles (in-process and the workers)."""
    return request.param


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_attempts": 3}


async def attempts(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/jobs/{job_id}/attempts")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def summary(items: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    """(number, outcome, error code) of each attempt."""
    return [(a["number"], a["outcome"], a["error"] and a["error"]["code"]) for a in items]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def rows_of(app: FastAPI, job_id: str) -> int:
    async with app.state.services.jobs.db.read() as session:
        query = select(func.count()).select_from(JobAttempt).where(JobAttempt.job_id == job_id)
        return int(await session.scalar(query) or 0)


async def test_failing_twice_then_succeeding_shows_three_attempts(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    params = {"key": uuid.uuid4().hex, "failures": 2, "kind": "retryable"}
    job_id = (await submit(client, b"payload", "flaky", params=params)).json()["id"]
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    items = await attempts(client, job_id)
    assert summary(items) == [
        (1, "retrying", "flaky"),
        (2, "retrying", "flaky"),
        (3, "succeeded", None),
    ]
    assert [a["error"] and a["error"]["message"] for a in items] == [
        "flaky run 1",
        "flaky run 2",
        None,
    ]
    for earlier, later in itertools.pairwise(items):
        assert at(earlier["started_at"]) <= at(earlier["ended_at"]) <= at(later["started_at"])
    # The row and its history are written together: the same attempt, the same instants.
    assert job["attempts"] == 3 and job["error"] is None
    assert at(items[-1]["started_at"]) == at(job["started_at"])
    assert at(items[-1]["ended_at"]) == at(job["finished_at"])
    assert set(items[0]) == {"number", "started_at", "ended_at", "outcome", "error"}


async def test_an_attempt_that_runs_out_of_time_ends_timed_out(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    params = {"steps": 10_000, "step_seconds": 0.01}
    job_id = (await submit(client, b"x", "slow", params=params, timeout_seconds=0.3)).json()["id"]
    await run_until_idle()
    assert summary(await attempts(client, job_id)) == [(1, "timed_out", "timeout")]


async def test_a_cancelled_running_job_ends_its_attempt_cancelled(
    client: httpx.AsyncClient, profile: str
) -> None:
    job_id = await running_gated(client, f"attempts-cancel-{profile}")
    [running] = await attempts(client, job_id)
    assert running["number"] == 1 and running["ended_at"] is None and running["outcome"] is None
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    [cancelled] = await attempts(client, job_id)
    assert (cancelled["outcome"], cancelled["error"]) == ("cancelled", None)
    assert cancelled["started_at"] == running["started_at"] and cancelled["ended_at"] is not None


async def test_attempts_cut_short_by_a_restart_show_interrupted(settings: Settings) -> None:
    """A graceful shutdown interrupts an attempt and gives it back. A process that died
    mid-attempt (its claim committed, nothing after it) leaves an open attempt, which the next
    start closes as interrupted by a crash, or as `crashed` when it was the job's last."""
    settings.executor = "inprocess"  # a restart resumes its jobs; workers rescue each other
    settings.workers = 1
    GATES[gate := f"attempts-restart-{uuid.uuid4().hex}"] = threading.Event()
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app), _client(app) as client:
        stopped = await running_gated(client, gate)  # holds the only slot
        died = (await submit(client, b"x", "checksum")).json()["id"]
        poison = (await submit(client, b"x", "checksum", max_attempts=1)).json()["id"]
        assert await attempts(client, died) == []  # queued behind `stopped`: not started
        async with app.state.services.jobs.db.write() as session:
            # What a process that then died had done: claimed the jobs, as its runner does.
            assert await JobRepository(session).start(died, "gone:1")
            assert await JobRepository(session).start(poison, "gone:1")
    GATES[gate].set()

    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app), _client(app) as client:
        await app.state.services.executor.run_until_idle()
        assert summary(await attempts(client, stopped)) == [
            (1, "interrupted", None),  # our shutdown: no error, and not counted
            (2, "succeeded", None),
        ]
        assert (await client.get(f"/v1/jobs/{stopped}")).json()["attempts"] == 1
        assert summary(await attempts(client, died)) == [
            (1, "interrupted", "crashed"),
            (2, "succeeded", None),
        ]
        assert (await client.get(f"/v1/jobs/{died}")).json()["attempts"] == 2
        job = (await client.get(f"/v1/jobs/{poison}")).json()
        assert job["status"] == "failed" and job["error"]["code"] == "crashed"
        [last] = await attempts(client, poison)
        assert (last["outcome"], last["error"]) == ("crashed", job["error"])


@pytest.mark.parametrize("profile", ["distributed"])
async def test_a_silent_workers_attempt_ends_interrupted_and_stays_so(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The workers' rescue closes the attempt of a worker gone silent; that worker, alive
    after all, cannot end the newer attempt when its own run ends (fenced, like the row)."""
    gate = f"attempts-rescue-{uuid.uuid4().hex}"
    GATES[gate], GATES[gate + "-2"] = threading.Event(), threading.Event()
    job_id = (await submit(client, b"x", "twice", params={"gate": gate})).json()["id"]
    await wait_for_status(client, job_id, "running")
    db = app.state.services.jobs.db
    async with db.write() as session:  # what a killed or frozen worker looks like
        await session.execute(
            text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        )
    queue = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings.database_url))
    )
    async with queue.open_async():
        assert await rescue_stalled(queue, db, silent_after=60) == 1

    async def second_started() -> list[dict[str, Any]] | None:
        items = await attempts(client, job_id)
        return items if len(items) == 2 else None

    rescued = [(1, "interrupted", "crashed"), (2, None, None)]
    assert summary(await wait_until_async(second_started)) == rescued
    caplog.set_level(logging.WARNING)
    GATES[gate].set()  # the first run ends now, late: refused

    async def first_refused() -> bool:
        return "attempt 1 was no longer current" in caplog.text

    await wait_until_async(first_refused)
    assert summary(await attempts(client, job_id)) == rescued
    GATES[gate + "-2"].set()
    assert (await wait_for_status(client, job_id, "succeeded"))["attempts"] == 2
    assert summary(await attempts(client, job_id)) == [
        (1, "interrupted", "crashed"),
        (2, "succeeded", None),
    ]


@pytest.mark.parametrize("settings_overrides", [{"auth": "required", "secret_key": SECRET}])
async def test_another_keys_job_is_not_found(app: FastAPI, run_until_idle: Any) -> None:
    alice, bob = await tenant(app, "alice"), await tenant(app, "bob")
    async with alice, bob:
        job_id = (await submit(alice, b"mine")).json()["id"]
        await run_until_idle()
        assert summary(await attempts(alice, job_id)) == [(1, "succeeded", None)]
        for response in (
            await bob.get(f"/v1/jobs/{job_id}/attempts"),
            await bob.get("/v1/jobs/no-such-job/attempts"),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "job_not_found"
        anonymous = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://filejob.test"
        )
        async with anonymous:
            assert (await anonymous.get(f"/v1/jobs/{job_id}/attempts")).status_code == 401


async def test_deleting_a_job_deletes_its_attempts(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    """Retention and delete-after-download keep the row (`expired`), so they keep its history;
    deleting the job, whatever its state, takes the history with it."""
    flaky = {"key": uuid.uuid4().hex, "failures": 1, "kind": "retryable"}
    finished = (await submit(client, b"f", "flaky", params=flaky)).json()["id"]
    aged = (await submit(client, b"a")).json()["id"]
    downloaded = (await submit(client, b"d", delete_after_download=True)).json()["id"]
    await run_until_idle()
    assert await rows_of(app, finished) == 2

    assert (await client.delete(f"/v1/jobs/{finished}")).status_code == 204
    assert await rows_of(app, finished) == 0
    assert (await client.get(f"/v1/jobs/{finished}/attempts")).status_code == 404

    async with app.state.services.jobs.db.write() as session:
        old = utcnow() - timedelta(hours=2)
        await session.execute(update(Job).where(Job.id == aged).values(finished_at=old))
    jobs = app.state.services.jobs
    assert (await Sweeper(jobs, result_ttl=3600, orphan_grace=600).sweep_once()).expired == 1
    result_url = (await client.get(f"/v1/jobs/{downloaded}")).json()["result"]["url"]
    assert (await client.get(result_url)).status_code == 200
    await wait_for_status(client, downloaded, "expired")
    for job_id in (aged, downloaded):
        assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "expired"
        assert summary(await attempts(client, job_id)) == [(1, "succeeded", None)]
        assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
        assert await rows_of(app, job_id) == 0


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
