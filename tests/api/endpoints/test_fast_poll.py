"""The plain poll's fast path (`api/fast_poll.py`) and its read (`jobs/poll_reads.py`): the same
answers as the route, the same rows as the engine's read, and the ordinary way back whenever
either cannot answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.api.deps import get_services
from filejob.api.schemas import job_json
from filejob.jobs.model import Job, utcnow
from filejob.jobs.poll_reads import (
    EngineReads,
    FallingBackReads,
    SqliteLoopReads,
)
from filejob.jobs.repository import ANY_OWNER
from tests.api.endpoints.test_poll import BASE, VARIANTS
from tests.support.auth import SECRET, tenant
from tests.support.jobs import submit

Tenant = Callable[..., Any]
# Headers that differ between any two responses, whichever path answers.
PER_RESPONSE = {"date", "x-request-id"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET}


@pytest.fixture
async def tenants(app: FastAPI) -> AsyncIterator[Tenant]:
    clients: list[httpx.AsyncClient] = []

    async def make(name: str, **limits: Any) -> httpx.AsyncClient:
        clients.append(await tenant(app, name, **limits))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


def _answer(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in PER_RESPONSE}
    return response.status_code, response.content, headers


async def _both(client: httpx.AsyncClient, path: str, **headers: str) -> tuple[Any, Any]:
    """The fast path's answer and the route's (a query sends the poll on to the route;
    `wait=0` is an ordinary poll there)."""
    fast = await client.get(path, headers=headers)
    routed = await client.get(path, params={"wait": "0"}, headers=headers)
    return _answer(fast), _answer(routed)


async def test_the_fast_path_answers_as_the_route_does(
    app: FastAPI, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    alice, bob = await tenants("alice"), await tenants("bob")
    done = (await submit(alice, b"abc")).json()["id"]
    await run_until_idle()
    etag = (await alice.get(f"/v1/jobs/{done}")).headers["etag"]
    transport = httpx.ASGITransport(app=app)
    anonymous = httpx.AsyncClient(transport=transport, base_url="http://filejob.test")
    wrong = httpx.AsyncClient(
        transport=transport,
        base_url="http://filejob.test",
        headers={"Authorization": "Bearer not-a-key"},
    )
    cases = [
        (alice, f"/v1/jobs/{done}", {}, 200),
        (alice, f"/v1/jobs/{done}", {"if-none-match": etag}, 304),
        (alice, f"/v1/jobs/{done}", {"if-none-match": '"other"'}, 200),
        (alice, "/v1/jobs/no-such-job", {}, 404),
        (bob, f"/v1/jobs/{done}", {}, 404),  # a foreign job answers as a missing one
        (anonymous, f"/v1/jobs/{done}", {}, 401),
        (wrong, f"/v1/jobs/{done}", {}, 401),
    ]
    async with anonymous, wrong:
        for client, path, headers, status in cases:
            fast, routed = await _both(client, path, **headers)
            assert fast[0] == status, (path, headers, fast)
            assert fast == routed, (path, headers)


async def test_a_plain_poll_is_answered_before_the_routes(
    app: FastAPI, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    alice = await tenants("alice")
    job_id = (await submit(alice, b"abc")).json()["id"]
    await run_until_idle()

    async def routed() -> None:
        raise AssertionError("the poll went through the route's dependencies")

    app.dependency_overrides[get_services] = routed
    try:
        answer = await alice.get(f"/v1/jobs/{job_id}")
    finally:
        del app.dependency_overrides[get_services]
    assert answer.status_code == 200 and answer.json()["id"] == job_id


async def test_a_rate_limit_counts_a_fast_poll_once(
    app: FastAPI, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    """Also when the fast path hands the request on to the route after an unexpected error:
    the caller it authenticated (and counted) goes along with the request."""
    alice = await tenants("alice", rate_limit=3)
    job_id = (await submit(alice, b"abc")).json()["id"]  # request 1
    await run_until_idle()
    jobs = app.state.services.jobs
    poll, failures = jobs.poll, [RuntimeError("once")]

    async def failing_once(job_id: str, owner_id: str | None) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return await poll(job_id, owner_id)

    jobs.poll = failing_once
    try:
        handed_on = await alice.get(f"/v1/jobs/{job_id}")  # request 2: fails, then routed
    finally:
        jobs.poll = poll
    assert not failures and handed_on.status_code == 200
    assert handed_on.json()["id"] == job_id
    assert (await alice.get(f"/v1/jobs/{job_id}")).status_code == 200  # request 3
    limited = await alice.get(f"/v1/jobs/{job_id}")
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"


async def test_fast_polls_are_counted_under_the_routes_label(
    client: httpx.AsyncClient, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    alice = await tenants("alice")
    job_id = (await submit(alice, b"abc")).json()["id"]
    await run_until_idle()
    for _ in range(3):
        assert (await alice.get(f"/v1/jobs/{job_id}")).status_code == 200
    metrics = (await client.get("/metrics")).text
    line = 'filejob_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}'
    counted = [row for row in metrics.splitlines() if row.startswith(line)]
    assert counted and float(counted[0].split()[-1]) >= 3


async def _insert(app: FastAPI, values: dict[str, Any]) -> None:
    async with app.state.services.jobs.db.write() as session:
        session.add(Job(**values, owner_id=None))


@pytest.mark.parametrize("variant", VARIANTS)
async def test_the_loop_read_gives_the_engines_row(
    app: FastAPI, profile: str, variant: str
) -> None:
    if profile != "embedded":
        pytest.skip("the loop read is SQLite's")
    reads = app.state.services.jobs.poll_reads
    values = {**BASE, **VARIANTS[variant], "id": f"job-{len(variant)}-{variant[:4]}"}
    # Finished now, not in 2025: the app's own sweeper would expire a long-finished job (its
    # keys cleared) between the two reads compared here.
    values["finished_at"] = max(values["finished_at"], utcnow())
    await _insert(app, values)
    engine = EngineReads(app.state.services.jobs.db)
    expected = await engine.row(values["id"], None)
    assert expected is not None
    got = await reads.row(values["id"], None)
    assert got is not None
    # As typed as the engine's (enums, aware datetimes, parsed JSON), so the same bytes out.
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in expected.items()}
    assert job_json(got) == job_json(expected)
    assert await reads.row(values["id"], "someone-else") is None
    assert await reads.row("missing", None) is None
    # A signed link's read: whoever owns the job.
    anyone = await reads.row(values["id"], ANY_OWNER)
    assert anyone is not None and job_json(anyone) == job_json(expected)
    assert await engine.row(values["id"], ANY_OWNER) == expected
    assert await reads.row("missing", ANY_OWNER) is None


async def test_sqlite_polls_read_on_the_loop(app: FastAPI, profile: str) -> None:
    reads = app.state.services.jobs.poll_reads
    if profile == "embedded":
        assert isinstance(reads, FallingBackReads)
    else:
        assert isinstance(reads, EngineReads)


async def test_a_loop_read_that_fails_falls_back_to_the_engine(
    app: FastAPI, profile: str, tmp_path: Path
) -> None:
    if profile != "embedded":
        pytest.skip("the loop read is SQLite's")
    await _insert(app, {**BASE, "id": "fallback-job"})
    garbage = tmp_path / "not-a-database"
    garbage.write_bytes(b"this is no SQLite file" * 100)
    engine = EngineReads(app.state.services.jobs.db)
    reads = FallingBackReads(SqliteLoopReads(str(garbage)), engine)
    try:
        assert await reads.row("fallback-job", None) == await engine.row("fallback-job", None)
        assert await reads.row("missing", None) is None
    finally:
        reads.close()
