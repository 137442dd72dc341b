"""GET /v1/events: every job of the caller, live, over one connection, on both profiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from filejob.db.engine import conninfo
from filejob.jobs.model import Job, utcnow
from tests.support.auth import SECRET, tenant
from tests.support.jobs import submit, wait_for_status
from tests.support.processors import GATES

AUTH = {"auth": "required", "secret_key": SECRET}
Event = dict[str, Any]


class EventStream:
    """A `text/event-stream` response read as it arrives, straight from the ASGI app: httpx's
    ASGITransport hands a body over only once it is complete, and this one never ends. Leaving
    the block disconnects, as a client closing its connection does."""

    def __init__(self, app: FastAPI, target: str, headers: dict[str, str] | None = None) -> None:
        path, _, query = target.partition("?")
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"filejob.test")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "server": ("filejob.test", 80),
            "client": ("127.0.0.1", 50000),
        }
        self.app = app
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keepalives = 0
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._requested = False
        self._buffer = ""
        self._started = asyncio.Event()

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            self._chunks.put_nowait(message.get("body", b""))

    async def __aenter__(self) -> EventStream:
        self._task = asyncio.create_task(self.app(self.scope, self._receive, self._send))
        async with asyncio.timeout(30):
            await self._started.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._gone.set()
        try:
            async with asyncio.timeout(30):
                await self._task
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def next(self) -> Event:
        """The next event (id, event, decoded data), waiting at most 30 s for it."""
        async with asyncio.timeout(30):
            while "\n\n" not in self._buffer or not self._take_event_ready():
                self._buffer += (await self._chunks.get()).decode()
        block, self._buffer = self._buffer.split("\n\n", 1)
        return _parse(block)

    def _take_event_ready(self) -> bool:
        """Drop leading blocks that are not events (`retry:`, comments); True if an event
        block is complete at the front."""
        while "\n\n" in self._buffer:
            block, rest = self._buffer.split("\n\n", 1)
            if "\nevent: " in f"\n{block}":
                return True
            self.keepalives += block.startswith(":")
            self._buffer = rest
        return False

    async def ended(self) -> None:
        """Until the app has ended the response by itself (waiting at most 30 s)."""
        async with asyncio.timeout(30):
            await asyncio.shield(self._task)

    async def until(self, done: Callable[[list[Event]], bool]) -> list[Event]:
        """Events until `done(events so far)` holds."""
        events: list[Event] = []
        while not done(events):
            events.append(await self.next())
        return events


def _parse(block: str) -> Event:
    fields = dict(line.split(": ", 1) for line in block.splitlines())
    return {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}


def reached(job_ids: list[str], status: str = "succeeded") -> Callable[[list[Event]], bool]:
    def done(events: list[Event]) -> bool:
        seen = {e["data"]["id"] for e in events if e["event"] == "status"}
        final = {e["data"]["id"] for e in events if e["data"].get("status") == status}
        return set(job_ids) <= seen & final

    return done


def without_link(job: dict[str, Any]) -> dict[str, Any]:
    """The job minus its signed link (re-signed, with a fresh expiry, at each rendering)."""
    if job.get("result"):
        job = {**job, "result": {**job["result"], "url": None, "url_expires_at": None}}
    return job


def cursors(events: list[Event]) -> list[int]:
    return [int(e["id"]) for e in events]


async def test_a_new_stream_says_ready_then_tells_each_change(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    old = (await submit(client, b"before the stream")).json()["id"]
    await run_until_idle()
    await wait_for_status(client, old, "succeeded")
    async with EventStream(app, "/v1/events") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        ready = await stream.next()
        assert ready["event"] == "ready" and ready["data"] == {} and ready["id"].isdigit()

        job_id = (await submit(client, b"x" * 3000)).json()["id"]
        events = await stream.until(reached([job_id]))
    assert {e["data"]["id"] for e in events} == {job_id}  # the old job is not told again
    assert events[0]["event"] == "status"  # a new job is told whole (its newest state)
    assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "succeeded"
    polled = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert without_link(events[-1]["data"]) == without_link(polled)  # GET's very document
    assert events[-1]["data"]["result"]["url"].startswith(f"/v1/jobs/{job_id}/result")
    assert cursors([ready, *events]) == sorted(cursors([ready, *events]))


async def test_seven_jobs_over_one_connection(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The page's case: more live jobs than a browser's 6 connections per server."""
    async with EventStream(app, "/v1/events") as stream:
        assert (await stream.next())["event"] == "ready"
        params = {"steps": 4, "step_seconds": 0.05}
        job_ids = [
            (await submit(client, b"y" * 1000, "slow", params=params)).json()["id"]
            for _ in range(8)
        ]
        events = await stream.until(reached(job_ids))
    for job_id in job_ids:
        mine = [e for e in events if e["data"]["id"] == job_id]
        assert mine[0]["event"] == "status"  # a new job is told whole first
        progress = [e["data"]["progress"] for e in mine if e["event"] == "progress"]
        assert progress == sorted(progress)
        assert all(
            set(e["data"]) == {"id", "status", "progress"}
            for e in mine[1:]
            if e["event"] == "progress"
        )
    assert cursors(events) == sorted(cursors(events))


async def _age(app: FastAPI, job_id: str, by: timedelta) -> None:
    """Make the job look last changed `by` ago."""
    async with app.state.services.jobs.db.write() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow() - by))


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_resumed_stream_gets_what_changed_while_away(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any, how: str
) -> None:
    long_ago, lately = [(await submit(client, b"old")).json()["id"] for _ in range(2)]
    await run_until_idle()
    await wait_for_status(client, lately, "succeeded")
    await _age(app, long_ago, timedelta(hours=1))
    await _age(app, lately, timedelta(minutes=30))
    async with EventStream(app, "/v1/events") as stream:
        cursor = (await stream.next())["id"]
    # Away: a job is made and runs to its end.
    missed = (await submit(client, b"while away")).json()["id"]
    await run_until_idle()
    await wait_for_status(client, missed, "succeeded")

    resume = (
        EventStream(app, "/v1/events", {"Last-Event-ID": cursor})
        if how == "header"
        else EventStream(app, f"/v1/events?since={cursor}")
    )
    async with resume as stream:
        events = await stream.until(reached([missed]))
    told = {e["data"]["id"] for e in events}
    assert missed in told
    assert long_ago not in told  # changed well before the cursor
    assert told <= {missed, lately}  # `lately` is at the cursor: at least once, maybe twice
    [event] = [e for e in events if e["data"]["id"] == missed]
    assert event["event"] == "status" and event["data"]["status"] == "succeeded"  # as it is now


async def test_a_change_that_shows_up_late_is_still_told(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    """A writer takes `updated_at` before it commits: a change can become visible after a
    newer one was read. It is told all the same (the poller reads back a window)."""
    late, newest = [(await submit(client, b"late")).json()["id"] for _ in range(2)]
    await run_until_idle()
    await wait_for_status(client, newest, "succeeded")
    await _age(app, late, timedelta(hours=1))
    async with EventStream(app, "/v1/events") as stream:
        await stream.next()
        newest_at = (await client.get(f"/v1/jobs/{newest}")).json()["finished_at"]
        async with app.state.services.jobs.db.write() as session:
            # Stamped 2 s before the newest change the stream has seen, committed only now.
            stamp = datetime.fromisoformat(newest_at) - timedelta(seconds=2)
            await session.execute(
                update(Job).where(Job.id == late).values(max_attempts=9, updated_at=stamp)
            )

        def told(events: list[Event]) -> bool:
            return any(e["data"].get("max_attempts") == 9 for e in events)

        event = (await stream.until(told))[-1]
    assert event["event"] == "status" and event["data"]["id"] == late


@pytest.mark.parametrize(
    "headers", [{"Last-Event-ID": "abc"}, {"Last-Event-ID": "1" * 20}, {"Last-Event-ID": ""}]
)
async def test_a_bad_cursor_is_a_400(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/v1/events", headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


async def test_a_bad_since_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/events", params={"since": "-5"})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("settings_overrides", [AUTH])
async def test_another_keys_jobs_never_appear(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    assert (await client.get("/v1/events")).status_code == 401  # no key, no stream
    alice, bob = await tenant(app, "alice"), await tenant(app, "bob")
    try:
        bobs_old = (await submit(bob, b"bob's, before")).json()["id"]
        await run_until_idle()
        as_alice = {"Authorization": alice.headers["Authorization"]}
        async with EventStream(app, "/v1/events", as_alice) as stream:
            assert (await stream.next())["event"] == "ready"
            bobs = (await submit(bob, b"bob's")).json()["id"]
            await run_until_idle()
            await wait_for_status(bob, bobs, "succeeded")
            alices = (await submit(alice, b"alice's")).json()["id"]
            events = await stream.until(reached([alices]))
        assert {e["data"]["id"] for e in events} == {alices}
        # Resumed from the very start: still only hers.
        async with EventStream(app, "/v1/events?since=0", as_alice) as stream:
            events = await stream.until(reached([alices]))
        assert {e["data"]["id"] for e in events} == {alices}
        assert bobs_old not in str(events) and bobs not in str(events)
    finally:
        await alice.aclose()
        await bob.aclose()


@pytest.mark.parametrize("profile", ["distributed"])
async def test_changes_made_elsewhere_arrive_as_notifications(
    app: FastAPI, client: httpx.AsyncClient, profile: str
) -> None:
    """The worker (its own connections) runs the job, and another connection changes a held
    one: with no polling of its own, only PostgreSQL's notifications can tell the stream."""
    app.state.services.watcher.fallback = 3600.0
    GATES["owner-elsewhere"] = threading.Event()
    try:
        async with EventStream(app, "/v1/events") as stream:
            assert (await stream.next())["event"] == "ready"
            done = (await submit(client, b"run by the worker")).json()["id"]
            held = (
                await submit(client, b"x", "slow", params={"gate": "owner-elsewhere", "steps": 1})
            ).json()["id"]
            events = await stream.until(reached([done]))
            assert [e for e in events if e["data"]["id"] == done][-1]["data"]["status"] == (
                "succeeded"
            )

            def progressed(events: list[Event]) -> bool:
                return any(e["data"]["id"] == held and e["data"]["progress"] == 1 for e in events)

            await stream.until(progressed)  # held at its gate: it changes no more by itself
            url = conninfo(app.state.services.settings.database_url)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
                await other.execute(
                    "UPDATE jobs SET max_attempts = 7, updated_at = now() WHERE id = %s", [held]
                )

            def changed(events: list[Event]) -> bool:
                return any(e["data"].get("max_attempts") == 7 for e in events)

            event = (await stream.until(changed))[-1]
            assert event["event"] == "status"
            assert event["data"]["id"] == held and event["data"]["status"] == "running"
    finally:
        GATES["owner-elsewhere"].set()


async def test_a_closed_stream_stops_the_reads(app: FastAPI) -> None:
    feed = app.state.services.watcher.feed
    async with EventStream(app, "/v1/events") as stream:
        await stream.next()
        assert feed.active  # the poller reads changes for it
    assert not feed.active  # and no more once it is gone


async def test_a_draining_server_ends_the_stream(app: FastAPI) -> None:
    """It would hold the shutdown up; the client comes back, with its cursor, elsewhere."""
    async with EventStream(app, "/v1/events") as stream:
        assert (await stream.next())["event"] == "ready"
        app.state.draining = True
        try:
            await stream.ended()
        finally:
            app.state.draining = False
    assert not app.state.services.watcher.feed.active
