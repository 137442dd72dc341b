"""Worker death: the jobs of a worker that went silent run again on another, and fencing keeps
a worker presumed dead that is in fact alive from overwriting the newer attempt."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from typing import Any

import httpx
import procrastinate
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from filejob.worker import rescue_stalled
from tests.support.jobs import running_gated, submit, wait_for_status
from tests.support.processors import GATES
from tests.support.queue import queue_entries
from tests.support.storage import blob_bytes, stored
from tests.support.wait import wait_until_async


async def silence_workers(app: FastAPI) -> None:
    """What a killed or frozen worker looks like from the database: no heartbeat for long."""
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        )


async def queue_ref(app: FastAPI, job_id: str) -> int:
    async with app.state.services.jobs.db.read() as session:
        return int(
            await session.scalar(text("SELECT queue_ref FROM jobs WHERE id = :id"), {"id": job_id})
        )


async def test_a_silent_workers_job_runs_again_and_its_late_outcome_is_refused(
    app: FastAPI,
    client: httpx.AsyncClient,
    queue_app: procrastinate.App,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = "stalled-fence"
    GATES[first], GATES[first + "-2"] = threading.Event(), threading.Event()
    job_id = (await submit(client, b"input", "twice", params={"gate": first})).json()["id"]
    await wait_for_status(client, job_id, "running")  # attempt 1 holds, unaware of the rest
    [(old_entry, _)] = await queue_entries(app, job_id)

    await silence_workers(app)
    caplog.set_level(logging.WARNING)
    assert await rescue_stalled(queue_app, app.state.services.jobs.db, silent_after=60) == 1

    # The worker is alive after all: attempt 2 starts there while attempt 1 still runs.
    async def attempt_2_started() -> bool:
        return (await client.get(f"/v1/jobs/{job_id}")).json()["attempts"] == 2

    await wait_until_async(attempt_2_started)
    entries = await queue_entries(app, job_id)
    assert entries[0] == (old_entry, "failed") and len(entries) == 2
    assert await queue_ref(app, job_id) == entries[1][0]

    GATES[first].set()  # attempt 1 finishes now and tries to publish b"first"

    async def attempt_1_refused() -> bool:
        return "attempt 1 was no longer current" in caplog.text

    await wait_until_async(attempt_1_refused)
    during = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert during["status"] == "running" and during["attempts"] == 2  # refused
    assert during["result"] is None
    assert (await queue_entries(app, job_id))[1][1] == "doing"  # attempt 1 did not end it

    GATES[first + "-2"].set()
    done = await wait_for_status(client, job_id, "succeeded", "failed")
    assert done["status"] == "succeeded" and done["attempts"] == 2
    assert done["result"]["sha256"] == hashlib.sha256(b"second").hexdigest()
    assert (await client.get(f"/v1/jobs/{job_id}/result")).content == b"second"
    assert await stored(app) == [f"inputs/{job_id}", f"results/{job_id}.2"]
    assert await blob_bytes(app, f"results/{job_id}.2") == b"second"

    async def entry_succeeded() -> bool:
        return (await queue_entries(app, job_id))[1][1] == "succeeded"

    await wait_until_async(entry_succeeded)


async def test_a_job_that_keeps_killing_its_workers_ends_crashed(
    app: FastAPI, client: httpx.AsyncClient, queue_app: procrastinate.App
) -> None:
    job_id = await running_gated(client, "stalled-poison", max_attempts=1)
    await silence_workers(app)
    assert await rescue_stalled(queue_app, app.state.services.jobs.db, silent_after=60) == 1
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "crashed"
    assert [status for _, status in await queue_entries(app, job_id)] == ["failed"]
    GATES["stalled-poison"].set()


# One slot: the test's worker is alive, only its heartbeat says otherwise, and with a free slot
# it could start the rescued job's new entry at once, under its stale heartbeat, where a
# rescuer still listing stalled entries would rescue that one too.
@pytest.mark.parametrize("settings_overrides", [{"workers": 1}], ids=["one-slot-worker"])
async def test_rescuers_racing_each_other_rescue_once(
    app: FastAPI, client: httpx.AsyncClient, queue_app: procrastinate.App
) -> None:
    job_id = await running_gated(client, "stalled-race")
    await silence_workers(app)
    db = app.state.services.jobs.db
    counts = await asyncio.gather(*(rescue_stalled(queue_app, db, 60) for _ in range(4)))
    assert sum(counts) == 1
    assert len(await queue_entries(app, job_id)) == 2
    GATES["stalled-race"].set()
    done: dict[str, Any] = await wait_for_status(client, job_id, "succeeded", "failed")
    assert done["status"] == "succeeded" and done["attempts"] == 2


async def test_live_workers_are_left_alone(
    app: FastAPI, client: httpx.AsyncClient, queue_app: procrastinate.App
) -> None:
    job_id = await running_gated(client, "stalled-alive")
    assert await rescue_stalled(queue_app, app.state.services.jobs.db, silent_after=60) == 0
    GATES["stalled-alive"].set()
    done = await wait_for_status(client, job_id, "succeeded", "failed")
    assert done["status"] == "succeeded" and done["attempts"] == 1
