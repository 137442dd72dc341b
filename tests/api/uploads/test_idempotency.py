"""Idempotency-Key on POST /v1/jobs (draft-ietf-httpapi-idempotency-key-header): a repeat of
a request gets its job and makes nothing; the key used for another request is 422; while the
first is in flight, 409. Per owner, in the database (so across servers and restarts), committed
with the job, swept when expired."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from filejob.jobs.idempotency import IdempotencyKey
from filejob.jobs.model import utcnow
from filejob.jobs.sweeper import Sweeper
from tests.api.uploads.raw_bodies import JOBS, NothingKept, nothing_kept, post_raw
from tests.support.auth import SECRET, tenant
from tests.support.jobs import submit, wait_for_status
from tests.support.problems import assert_problem
from tests.support.processors import GATES
from tests.support.settings import PROFILES
from tests.support.storage import job_rows, stored

__all__ = ["nothing_kept"]  # a fixture, used by name

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
REPLAYED = "idempotent-replayed"


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


def keyed(key: str = KEY) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def key_rows(app: FastAPI) -> list[Any]:
    async with app.state.services.jobs.db.read() as session:
        return list((await session.execute(select(IdempotencyKey.__table__))).all())


async def inputs(app: FastAPI) -> list[str]:
    return [key for key in await stored(app) if key.startswith("inputs/")]


async def set_key_row(app: FastAPI, **values: Any) -> None:
    async with app.state.services.jobs.db.write() as session:
        await session.execute(update(IdempotencyKey).values(**values))


# -- repeats -------------------------------------------------------------------------------


async def test_a_repeat_gets_the_first_job_as_it_is_now_and_makes_nothing(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    first = await submit(client, b"once", params={}, headers=keyed())
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    job = first.json()
    await run_until_idle()
    await wait_for_status(client, job["id"], "succeeded")
    # The same request again, its params written otherwise (the same JSON value).
    again = await submit(client, b"once", params="{ }", headers=keyed())
    assert again.status_code == 202, again.text
    assert again.headers[REPLAYED] == "true"
    assert again.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (again.json()["id"], again.json()["status"]) == (job["id"], "succeeded")
    assert await job_rows(app) == 1
    assert await inputs(app) == [f"inputs/{job['id']}"]  # the repeat's bytes were not kept
    [row] = await key_rows(app)
    assert (row.key, row.job_id, row.owner) == (KEY, job["id"], "")  # "": anonymous


async def test_a_raw_repeat_of_a_form_with_the_same_fields_and_bytes_is_the_same_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    params = {"format": "gzip", "level": 3}
    form = await submit(client, b"bytes", "compress", params=params, headers=keyed())
    query = {"processor": "compress", "params": json.dumps(params, indent=1, sort_keys=True)}
    raw = await post_raw(client, b"bytes", query, keyed())
    assert raw.status_code == 202, raw.text
    assert raw.json()["id"] == form.json()["id"] and raw.headers[REPLAYED] == "true"
    assert await job_rows(app) == 1


@pytest.mark.parametrize(
    ("changed", "content"),
    [
        pytest.param({}, b"other bytes", id="other-file"),
        pytest.param({"max_attempts": 1}, b"bytes", id="other-field"),
        pytest.param({"params": {"level": 9, "format": "gzip"}}, b"bytes", id="other-params"),
    ],
)
async def test_the_key_of_another_request_is_422_and_nothing_is_kept(
    app: FastAPI, client: httpx.AsyncClient, changed: dict[str, Any], content: bytes
) -> None:
    fields: dict[str, Any] = {"params": {"format": "gzip", "level": 3}}
    first = await submit(client, b"bytes", "compress", headers=keyed(), **fields)
    assert first.status_code == 202, first.text
    other = await submit(client, content, "compress", headers=keyed(), **(fields | changed))
    assert_problem(other, 422, "idempotency_key_reused")
    assert await job_rows(app) == 1
    assert await inputs(app) == [f"inputs/{first.json()['id']}"]


async def test_a_quoted_key_is_the_same_key(client: httpx.AsyncClient) -> None:
    # The draft's form is an RFC 8941 string; most clients send the bare key.
    first = await submit(client, b"x", headers=keyed(f'"{KEY}"'))
    again = await submit(client, b"x", headers=keyed(KEY))
    assert again.headers[REPLAYED] == "true" and again.json()["id"] == first.json()["id"]


async def test_keys_are_kept_apart_per_request_of_each_group(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Concurrent submits commit in groups (jobs/commits.py): each key with its own job.
    keys = [f"key-{n}" for n in range(12)]
    firsts = await asyncio.gather(*(submit(client, k.encode(), headers=keyed(k)) for k in keys))
    ids = [response.json()["id"] for response in firsts]
    assert len(set(ids)) == len(keys)
    repeats = await asyncio.gather(*(submit(client, k.encode(), headers=keyed(k)) for k in keys))
    assert [response.json()["id"] for response in repeats] == ids
    assert {row.key: row.job_id for row in await key_rows(app)} == dict(zip(keys, ids, strict=True))
    assert await job_rows(app) == len(keys)


# -- failures, in flight, abandoned --------------------------------------------------------


async def test_a_refused_request_gives_its_key_back(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    refused = await post_raw(client, b"x", {"processor": "nope"}, keyed())
    assert_problem(refused, 422, "unknown_processor")
    mismatch = await post_raw(client, b"x", {"sha256": "0" * 64}, keyed())
    assert_problem(mismatch, 422, "digest_mismatch")
    await nothing_kept()
    assert await key_rows(app) == []
    accepted = await post_raw(client, b"x", headers=keyed())
    assert accepted.status_code == 202 and REPLAYED not in accepted.headers


async def test_while_the_first_is_in_flight_a_repeat_is_409(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"first half, "
        reading.set()
        await release.wait()
        yield b"second half"

    first = asyncio.create_task(post_raw(client, slow_body(), headers=keyed()))
    await asyncio.wait_for(reading.wait(), 10)
    repeat = await post_raw(client, b"first half, second half", headers=keyed())
    problem = assert_problem(repeat, 409, "idempotency_key_in_flight")
    assert int(repeat.headers["retry-after"]) > 0 and problem["detail"]
    release.set()
    assert (await first).status_code == 202
    again = await post_raw(client, b"first half, second half", headers=keyed())
    assert again.headers[REPLAYED] == "true" and again.json()["id"] == (await first).json()["id"]
    assert await job_rows(app) == 1


async def test_a_first_request_whose_claim_was_taken_over_does_not_commit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A request that outlives `abandoned_after` may lose its key to a repeat; its job then
    must not commit, or the key would name one job and the repeat make another."""
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"slow"
        reading.set()
        await release.wait()

    first = asyncio.create_task(post_raw(client, slow_body(), headers=keyed()))
    await asyncio.wait_for(reading.wait(), 10)
    await set_key_row(app, token="taken-over-by-another")
    release.set()
    assert_problem(await first, 409, "idempotency_key_in_flight")
    assert await job_rows(app) == 0
    assert await inputs(app) == []


async def test_a_claim_left_by_a_dead_request_is_taken_over_once_old(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # A claim with no request behind it (its server died mid-upload): in flight while young.
    async with app.state.services.jobs.db.write() as session:
        now = utcnow()
        session.add(
            IdempotencyKey(
                owner="", key=KEY, token="dead", claimed_at=now, expires_at=now + timedelta(1)
            )
        )
    assert_problem(await submit(client, b"x", headers=keyed()), 409, "idempotency_key_in_flight")
    # Older than any request may take (the body deadline and a grace): abandoned.
    await set_key_row(app, claimed_at=utcnow() - timedelta(hours=3))
    taken = await submit(client, b"x", headers=keyed())
    assert taken.status_code == 202 and REPLAYED not in taken.headers
    [row] = await key_rows(app)
    assert row.job_id == taken.json()["id"]


# -- lifetime ------------------------------------------------------------------------------


async def test_an_expired_key_makes_a_new_job_and_is_swept(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = (await submit(client, b"x", headers=keyed())).json()["id"]
    await set_key_row(app, expires_at=utcnow() - timedelta(seconds=1))
    second = await submit(client, b"x", headers=keyed())
    assert second.status_code == 202 and REPLAYED not in second.headers
    assert second.json()["id"] != first
    await set_key_row(app, expires_at=utcnow() - timedelta(seconds=1))
    sweeper = Sweeper(app.state.services.jobs, result_ttl=3600, orphan_grace=600)
    assert (await sweeper.sweep_once()).idempotency_keys == 1
    assert await key_rows(app) == []
    assert (await sweeper.sweep_once()).idempotency_keys == 0


@pytest.mark.parametrize("settings_overrides", [{"idempotency_ttl": 600}])
async def test_a_completed_key_lasts_the_ttl(app: FastAPI, client: httpx.AsyncClient) -> None:
    await submit(client, b"x", headers=keyed())
    [row] = await key_rows(app)
    left = (row.expires_at - utcnow()).total_seconds()
    assert 0 < left <= 600  # from the job's commit (a claim lasts the body deadline more)


async def test_deleting_the_job_forgets_its_key(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    first = (await submit(client, b"x", headers=keyed())).json()["id"]
    await run_until_idle()
    await wait_for_status(client, first, "succeeded")
    assert (await client.delete(f"/v1/jobs/{first}")).status_code == 204
    assert await key_rows(app) == []
    second = await submit(client, b"x", headers=keyed())
    assert second.status_code == 202 and second.json()["id"] != first


# -- the header ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Idempotency-Key", "")], id="empty"),
        pytest.param([("Idempotency-Key", '""')], id="empty-string"),
        pytest.param([("Idempotency-Key", "k" * 256)], id="too-long"),
        pytest.param([("Idempotency-Key", "caf\u00e9")], id="not-ascii"),
        pytest.param([("Idempotency-Key", "a"), ("Idempotency-Key", "b")], id="two"),
    ],
)
async def test_a_bad_key_is_400_before_the_body(
    nothing_kept: NothingKept,
    app: FastAPI,
    client: httpx.AsyncClient,
    headers: list[tuple[str, str]],
) -> None:
    encoded = [(name.encode(), value.encode()) for name, value in headers]
    response = await client.post(
        JOBS, params={"processor": "checksum"}, content=b"x", headers=encoded
    )
    assert_problem(response, 400, "invalid_idempotency_key")
    await nothing_kept()
    assert await key_rows(app) == []


async def test_the_longest_key_is_taken(client: httpx.AsyncClient) -> None:
    assert (await submit(client, b"x", headers=keyed("k" * 255))).status_code == 202


# -- owners --------------------------------------------------------------------------------

AUTH = {"auth": "required", "secret_key": SECRET}


@pytest.mark.parametrize("settings_overrides", [AUTH])
async def test_keys_are_per_owner(app: FastAPI) -> None:
    alice, bob = await tenant(app, "alice"), await tenant(app, "bob")
    async with alice, bob:
        mine = await submit(alice, b"x", headers=keyed())
        theirs = await submit(bob, b"x", headers=keyed())
        assert theirs.status_code == 202 and REPLAYED not in theirs.headers
        assert theirs.json()["id"] != mine.json()["id"]
        # Another owner's key with another request is no misuse either.
        assert (await submit(bob, b"y", headers=keyed("k2"))).status_code == 202
        assert (await submit(alice, b"z", headers=keyed("k2"))).status_code == 202
    owners = {row.owner for row in await key_rows(app)}
    assert owners == {alice.key.id, bob.key.id}  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings_overrides", [AUTH])
async def test_a_repeat_is_answered_even_at_the_active_jobs_limit(
    app: FastAPI, run_until_idle: Callable[[], Any]
) -> None:
    GATES["idempotent-limit"] = gate = threading.Event()
    alice = await tenant(app, "alice", max_active_jobs=1)
    params = {"gate": "idempotent-limit", "steps": 1, "step_seconds": 0}
    async with alice:
        first = await submit(alice, b"x", "slow", params=params, headers=keyed())
        assert first.status_code == 202, first.text
        again = await submit(alice, b"x", "slow", params=params, headers=keyed())
        assert again.status_code == 202 and again.headers[REPLAYED] == "true"
        other = await submit(alice, b"x", "slow", params=params, headers=keyed("k2"))
        assert_problem(other, 429, "too_many_active_jobs")
        gate.set()
        await run_until_idle()
        await wait_for_status(alice, first.json()["id"], "succeeded")
    async with app.state.services.jobs.db.read() as session:
        count = await session.scalar(select(func.count()).select_from(IdempotencyKey))
    assert count == 1  # the refused request gave its key back
