"""POST /v1/jobs/{id}/cancel: a queued or running job ends `cancelled` and is kept; a final one
is refused with 409 `job_final`, untouched; DELETE still cancels or deletes as before."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit, wait_for_status
from tests.support.problems import assert_problem
from tests.support.processors import GATES
from tests.support.storage import stored


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    GATES["cancel"] = event
    yield event
    event.set()


async def test_cancel_a_running_job_answers_it_cancelled_and_keeps_it(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    params = {"steps": 10_000, "step_seconds": 0.01}
    job = (await submit(client, os.urandom(1 << 16), "slow", params=params)).json()
    await wait_for_status(client, job["id"], "running")
    response = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == job["id"] and body["status"] == "cancelled" and body["finished_at"]
    await run_until_idle()
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
    assert [k.split("/")[0] for k in await stored(app)] == ["inputs"]  # kept, no partial result


async def test_cancel_a_queued_job(
    client: httpx.AsyncClient, run_until_idle: Any, gate: threading.Event
) -> None:
    # Two jobs held at the gate keep both workers busy, so the third stays queued.
    for _ in range(2):
        held = await submit(client, b"x", "slow", params={"steps": 1, "gate": "cancel"})
        await wait_for_status(client, held.json()["id"], "running")
    queued = (await submit(client, b"y")).json()["id"]
    response = await client.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    gate.set()
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{queued}")).json()
    assert job["status"] == "cancelled" and job["attempts"] == 0


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
async def test_cancel_a_final_job_is_409_and_leaves_it_be(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, outcome: str
) -> None:
    if outcome == "failed":
        params = {"steps": 1, "step_seconds": 0, "fail": True}
        job_id = (await submit(client, b"z", "slow", params=params)).json()["id"]
    else:
        job_id = (await submit(client, b"z")).json()["id"]
    await run_until_idle()
    if outcome == "cancelled":  # a finished job cannot be cancelled: a queued one can, once
        job_id = (await submit(client, b"q", "slow", params={"steps": 10_000})).json()["id"]
        assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
        await run_until_idle()
    before = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert before["status"] == outcome
    files = await stored(app)

    body = assert_problem(await client.post(f"/v1/jobs/{job_id}/cancel"), 409, "job_final")
    assert body["detail"] == f"Job {job_id} already {outcome}; nothing to cancel."
    assert body["job_status"] == outcome
    assert (await client.get(f"/v1/jobs/{job_id}")).json() == before
    assert await stored(app) == files  # nothing deleted: that is DELETE's doing


async def test_cancel_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/jobs/nope/cancel"), 404, "job_not_found")


async def test_cancel_another_keys_job_is_404(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    from tests.support.auth import tenant

    async with await tenant(app, "alice") as alice, await tenant(app, "bob") as bob:
        job_id = (await submit(alice, b"x", "slow", params={"steps": 10_000})).json()["id"]
        assert_problem(await bob.post(f"/v1/jobs/{job_id}/cancel"), 404, "job_not_found")
        assert (await alice.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200
    await run_until_idle()


async def test_delete_still_deletes_a_final_job(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = (await submit(client, b"data")).json()["id"]
    await run_until_idle()
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 404
    assert await stored(app) == []


async def test_the_operation_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/jobs/{job_id}/cancel"]["post"]
    assert operation["operationId"].startswith("cancel_job")  # the function's name
    assert {"200", "404", "409"} <= set(operation["responses"])
