"""Fencing: an attempt presumed dead (and retried) that is in fact still running can never
overwrite the newer attempt's status or result."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from filejob.jobs.control import StopSignal
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus
from tests.support.jobs import submit, wait_for_status
from tests.support.processors import GATES
from tests.support.settings import PROFILES
from tests.support.storage import blob_bytes, stored
from tests.support.wait import wait_until_async as eventually


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # These tests drive the runner directly; with procrastinate workers the same case is
    # tested through the real stalled-job rescue (tests/system/workers/test_stalled.py).
    return {"executor": "inprocess"}


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_a_stale_attempt_is_refused(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any, profile: str
) -> None:
    first, second = f"fence-{profile}", f"fence-{profile}-2"
    GATES[first], GATES[second] = threading.Event(), threading.Event()
    job_id = (await submit(client, b"input", "twice", params={"gate": first})).json()["id"]
    await wait_for_status(client, job_id, "running")  # attempt 1 holds, unaware of the rest

    # Attempt 1 is presumed dead (what a stalled-worker rescue does): the job is queued again
    # and attempt 2 starts, while attempt 1 still runs.
    db = app.state.services.jobs.db
    async with db.write() as session:
        assert await JobRepository(session).transition(
            job_id, JobStatus.QUEUED, expected=[JobStatus.RUNNING]
        )
    runner = app.state.services.executor.runner
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.run, job_id, None, StopSignal())

        async def attempt_2_claimed() -> bool:
            return (await client.get(f"/v1/jobs/{job_id}")).json()["attempts"] == 2

        await eventually(attempt_2_claimed)

        GATES[first].set()  # attempt 1 finishes now and tries to publish b"first"
        await run_until_idle()
        during = (await client.get(f"/v1/jobs/{job_id}")).json()
        assert during["status"] == "running" and during["attempts"] == 2  # refused
        assert during["result"] is None
        assert await stored(app) == [f"inputs/{job_id}"]  # its result went away again

        GATES[second].set()
    done = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["result"]["sha256"] == hashlib.sha256(b"second").hexdigest()
    assert (await client.get(f"/v1/jobs/{job_id}/result")).content == b"second"
    assert await stored(app) == [f"inputs/{job_id}", f"results/{job_id}.2"]
    assert await blob_bytes(app, f"results/{job_id}.2") == b"second"


async def test_a_stale_attempt_cannot_report_progress(app: FastAPI, client: Any) -> None:
    # A step a second: no real report can reach 0.99 while the stale one is tried.
    params = {"steps": 10_000, "step_seconds": 1}
    job_id = (await submit(client, b"x", "slow", params=params)).json()["id"]
    await wait_for_status(client, job_id, "running")
    db = app.state.services.jobs.db
    async with db.write() as session:
        job = await JobRepository(session).get(job_id)
        assert job is not None
        await JobRepository(session).set_progress(job_id, 0.99, attempt=job.attempts - 1)
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["progress"] < 0.99
    await client.delete(f"/v1/jobs/{job_id}")
