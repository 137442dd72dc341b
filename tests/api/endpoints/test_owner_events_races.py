"""GET /v1/events where timing bites: a change that commits while a new stream starts, and a
writer whose clock runs ahead of the server's (on both profiles)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

import filejob.jobs.owner_stream as owner_stream
from filejob.jobs.changes import encode_cursor
from filejob.jobs.model import Job, utcnow
from tests.api.endpoints.test_owner_events import Event, EventStream
from tests.support.jobs import submit, wait_for_status

AHEAD = timedelta(hours=1)  # a writer's clock this far ahead of the server's


async def _finished_jobs(client: httpx.AsyncClient, run_until_idle: Any, count: int) -> list[str]:
    """`count` jobs, run to their end (so nothing changes them but the test)."""
    job_ids = [(await submit(client, b"x")).json()["id"] for _ in range(count)]
    await run_until_idle()
    for job_id in job_ids:
        await wait_for_status(client, job_id, "succeeded")
    return job_ids


async def _change(app: FastAPI, job_id: str, at: datetime, max_attempts: int) -> None:
    """Change the job as a writer whose clock reads `at` does, and tell the poller."""
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(max_attempts=max_attempts, updated_at=at)
        )
    app.state.services.watcher.poke()


async def _newest_change(app: FastAPI) -> datetime:
    async with app.state.services.jobs.db.read() as session:
        newest = await session.scalar(select(func.max(Job.updated_at)))
    assert newest is not None
    return newest


def _told(job_id: str, max_attempts: int) -> Any:
    def done(events: list[Event]) -> bool:
        return any(
            e["data"]["id"] == job_id and e["data"].get("max_attempts") == max_attempts
            for e in events
        )

    return done


async def test_ready_is_the_owners_newest_change(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    async with EventStream(app, "/v1/events") as stream:
        assert (await stream.next())["id"] == "0"  # no jobs yet
    await _finished_jobs(client, run_until_idle, 2)
    async with EventStream(app, "/v1/events") as stream:
        ready = await stream.next()
    assert ready["event"] == "ready"
    assert ready["id"] == encode_cursor(await _newest_change(app))


async def test_a_change_while_the_stream_starts_is_sent_after_ready(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream reads where it starts, then the jobs: a change committed in between is
    newer than `ready`'s cursor, so it is sent (it used to be noted as shown, and lost)."""
    [job_id] = await _finished_jobs(client, run_until_idle, 1)
    read_start = owner_stream.owner_newest_change

    async def then_a_change(session: Any, owner_id: str | None) -> datetime | None:
        newest = await read_start(session, owner_id)
        monkeypatch.setattr(owner_stream, "owner_newest_change", read_start)  # once
        await _change(app, job_id, utcnow(), max_attempts=9)
        return newest

    monkeypatch.setattr(owner_stream, "owner_newest_change", then_a_change)
    before = await _newest_change(app)
    async with EventStream(app, "/v1/events") as stream:
        ready = await stream.next()
        events = await stream.until(_told(job_id, 9))
    assert ready["event"] == "ready" and ready["id"] == encode_cursor(before)
    assert events[-1]["event"] == "status"
    assert int(events[-1]["id"]) > int(ready["id"])


async def test_a_writer_ahead_hides_no_other_change(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    """A change stamped an hour ahead is sent, and neither the poller's window nor the
    stream's cursor follows it there: a correctly stamped change after it is sent too."""
    ahead, correct = await _finished_jobs(client, run_until_idle, 2)
    async with EventStream(app, "/v1/events") as stream:
        assert (await stream.next())["event"] == "ready"
        await _change(app, ahead, utcnow() + AHEAD, max_attempts=8)
        told_ahead = (await stream.until(_told(ahead, 8)))[-1]
        assert int(told_ahead["id"]) < int(encode_cursor(utcnow() + AHEAD / 2))
        await _change(app, correct, utcnow(), max_attempts=9)
        events = await stream.until(_told(correct, 9))
    assert events[-1]["event"] == "status"


async def test_a_new_stream_starts_at_the_servers_clock_at_the_latest(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    """A job stamped ahead before the stream opens moves neither its start nor the poller's
    window: the stream sends it (it is newer than the start) and the changes after it."""
    ahead, correct = await _finished_jobs(client, run_until_idle, 2)
    await _change(app, ahead, utcnow() + AHEAD, max_attempts=8)
    async with EventStream(app, "/v1/events") as stream:
        ready = await stream.next()
        assert int(ready["id"]) < int(encode_cursor(utcnow() + AHEAD / 2))
        await stream.until(_told(ahead, 8))
        await _change(app, correct, utcnow(), max_attempts=9)
        await stream.until(_told(correct, 9))
