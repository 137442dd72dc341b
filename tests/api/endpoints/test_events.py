"""Live job events (SSE) and long polls, on both profiles."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import update

from filejob.db.engine import conninfo
from filejob.jobs.model import Job, utcnow
from tests.support.jobs import submit
from tests.support.processors import GATES
from tests.support.wait import wait_until_async


def parse(stream: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body: id, event and decoded data of each."""
    events = []
    for block in stream.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "event" in fields:
            events.append(
                {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


async def test_events_follow_a_job_to_its_end(client: httpx.AsyncClient) -> None:
    params = {"steps": 20, "step_seconds": 0.05}
    job_id = (await submit(client, b"x" * 4000, "slow", params=params)).json()["id"]
    response = await client.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.startswith("retry: ")
    events = parse(response.text)

    first, last = events[0], events[-1]
    assert first["event"] == "status" and first["data"]["id"] == job_id  # the state right now
    assert last["event"] == "status" and last["data"]["status"] == "succeeded"
    assert last["data"]["result"]["size"] == 4000
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[-2:] == ["running", "succeeded"]
    progress = [e["data"]["progress"] for e in events if e["event"] == "progress"]
    assert progress and progress == sorted(progress) and all(0 < p <= 1 for p in progress)
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # one id per change


async def test_a_reconnect_with_last_event_id_gets_only_what_it_missed(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = (await submit(client, b"abc", "checksum")).json()["id"]
    await run_until_idle()
    [final] = parse((await client.get(f"/v1/jobs/{job_id}/events")).text)
    assert final["data"]["status"] == "succeeded"

    # It saw the final state: nothing more to say, and the stream ends at once.
    again = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": final["id"]})
    assert again.status_code == 200 and parse(again.text) == []
    # It saw an older state: the current one, then the end.
    older = await client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "1"})
    assert [e["data"]["status"] for e in parse(older.text)] == ["succeeded"]


async def test_events_of_a_missing_job_are_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA/events")
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


async def holding(client: httpx.AsyncClient, job_id: str) -> None:
    """Until the gated one-step job has done its step and holds on its gate (no more changes)."""

    async def done_its_step() -> bool:
        return (await client.get(f"/v1/jobs/{job_id}")).json()["progress"] == 1

    await wait_until_async(done_its_step)


async def test_a_long_poll_answers_when_the_job_changes(client: httpx.AsyncClient) -> None:
    GATES["long-poll"] = threading.Event()
    job_id = (await submit(client, b"x", "slow", params={"gate": "long-poll", "steps": 1})).json()[
        "id"
    ]
    await holding(client, job_id)

    poll = asyncio.create_task(client.get(f"/v1/jobs/{job_id}", params={"wait": 30}))
    await asyncio.sleep(0.3)
    assert not poll.done()  # nothing changed yet: it waits
    GATES["long-poll"].set()
    answered = await asyncio.wait_for(poll, 20)
    assert answered.status_code == 200
    assert answered.json()["status"] == "succeeded"


async def test_a_long_poll_times_out_with_the_job_as_it_is(client: httpx.AsyncClient) -> None:
    GATES["long-poll-idle"] = threading.Event()
    job_id = (
        await submit(client, b"x", "slow", params={"gate": "long-poll-idle", "steps": 1})
    ).json()["id"]
    await holding(client, job_id)
    response = await client.get(f"/v1/jobs/{job_id}", params={"wait": 0.5})
    assert response.status_code == 200 and response.json()["status"] == "running"
    GATES["long-poll-idle"].set()
    refused = await client.get(f"/v1/jobs/{job_id}", params={"wait": 61})
    assert refused.status_code == 422


async def long_poll_across(
    app: Any, client: httpx.AsyncClient, gate: str, change: Callable[[str], Awaitable[None]]
) -> dict[str, Any]:
    """A long poll on a job that holds still, answered after `change(job_id)`. The watcher no
    longer polls on its own, so only a poke can wake it: the answer shows whether one came."""
    watcher = app.state.services.watcher
    watcher.fallback = 3600.0
    GATES[gate] = threading.Event()
    params = {"gate": gate, "steps": 1}
    job_id = (await submit(client, b"x", "slow", params=params)).json()["id"]
    await holding(client, job_id)
    poll = asyncio.create_task(client.get(f"/v1/jobs/{job_id}", params={"wait": 15}))

    async def waited_on() -> bool:
        return job_id in watcher._waiters

    try:
        await wait_until_async(waited_on)
        await asyncio.sleep(0.2)  # its first poll (on the waiter's arrival) has seen no change
        await change(job_id)
        return (await poll).json()
    finally:
        GATES[gate].set()


async def test_a_long_poll_wakes_on_this_servers_own_write(
    app: Any, client: httpx.AsyncClient
) -> None:
    async def change(job_id: str) -> None:
        async with app.state.services.jobs.db.write() as session:
            await session.execute(
                update(Job).where(Job.id == job_id).values(max_attempts=7, updated_at=utcnow())
            )

    assert (await long_poll_across(app, client, "poke-own", change))["max_attempts"] == 7


@pytest.mark.parametrize("profile", ["distributed"])
async def test_a_long_poll_wakes_on_another_process_write(
    app: Any, client: httpx.AsyncClient, profile: str
) -> None:
    """A write by a connection that is not the server's (a worker, another API server)
    reaches it as a PostgreSQL notification."""
    url = conninfo(app.state.services.settings.database_url)

    async def change(job_id: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
            await other.execute(
                "UPDATE jobs SET max_attempts = 7, updated_at = now() WHERE id = %s", [job_id]
            )

    assert (await long_poll_across(app, client, "poke-other", change))["max_attempts"] == 7
