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

from service.jobs.repository import JobRepository
from service.jobs.runner import RunControl
from service.jobs.states import JobStatus
from tests.conftest import PROFILES
from tests.support import GATES, blob_bytes, stored, submit, wait_for_status


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


async def test_a_stale_attempt_is_refused(
    app: FastAPI, client: httpx.AsyncClient, drain: Any, profile: str
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
        tg.start_soon(runner.run, job_id, None, RunControl())
        with anyio.fail_after(10):
            while True:  # until attempt 2 has claimed the job
                if (await client.get(f"/v1/jobs/{job_id}")).json()["attempts"] == 2:
                    break
                await anyio.sleep(0.01)

        GATES[first].set()  # attempt 1 finishes now and tries to publish b"first"
        await drain()
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
    job_id = (await submit(client, b"x", "slow", params={"gate": "never-fence"})).json()["id"]
    await wait_for_status(client, job_id, "running")
    db = app.state.services.jobs.db
    async with db.write() as session:
        job = await JobRepository(session).get(job_id)
        assert job is not None
        await JobRepository(session).set_progress(job_id, 0.99, attempt=job.attempts - 1)
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["progress"] < 0.99
    await client.delete(f"/v1/jobs/{job_id}")
