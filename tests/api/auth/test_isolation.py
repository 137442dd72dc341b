"""Owners see only their own jobs; someone else's job answers exactly like a missing one."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from tests.support.auth import KeyClient
from tests.support.jobs import submit, wait_for_status

MISSING = "AAAAAAAAAAAAAAAAAAAAAA"  # the shape of a job id, but no job has it

# Every endpoint that names a job: (method, path template).
JOB_ENDPOINTS = [
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}?wait=1"),
    ("GET", "/v1/jobs/{id}/events"),
    ("GET", "/v1/jobs/{id}/result"),
    ("HEAD", "/v1/jobs/{id}/result"),
    ("GET", "/v1/jobs/{id}/result-link"),
    ("GET", "/v1/jobs/{id}/result-link?ttl=60"),
    ("DELETE", "/v1/jobs/{id}"),
]


@pytest.fixture
async def alice_job(key_client: KeyClient, run_until_idle: Callable[[], Any]) -> tuple[Any, str]:
    alice = await key_client("alice")
    created = await submit(alice, b"alice's secret file")
    await run_until_idle()
    job = await wait_for_status(alice, created.json()["id"], "succeeded")
    return alice, job["id"]


def _shape(response: httpx.Response, job_id: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers that matter and body, with the asked-for id replaced by a marker."""
    headers = {
        k: v.replace(job_id, "<id>")
        for k, v in response.headers.items()
        if k not in ("date", "content-length", "x-request-id")  # x-request-id: new per request
    }
    return response.status_code, headers, response.content.replace(job_id.encode(), b"<id>")


@pytest.mark.parametrize(("method", "template"), JOB_ENDPOINTS)
async def test_someone_elses_job_looks_missing(
    key_client: KeyClient, alice_job: tuple[Any, str], method: str, template: str
) -> None:
    alice, job_id = alice_job
    result = (await alice.get(f"/v1/jobs/{job_id}/result")).content
    bob = await key_client("bob")
    foreign = await bob.request(method, template.format(id=job_id))
    missing = await bob.request(method, template.format(id=MISSING))
    assert foreign.status_code == 404
    assert _shape(foreign, job_id) == _shape(missing, MISSING)
    if method != "HEAD":
        assert foreign.json()["code"] == "job_not_found"
    # ... and bob's attempt changed nothing for alice (DELETE above included).
    job = (await alice.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded"
    assert (await alice.get(f"/v1/jobs/{job_id}/result")).content == result


async def test_listing_shows_only_the_callers_jobs(
    key_client: KeyClient, alice_job: tuple[Any, str]
) -> None:
    alice, job_id = alice_job
    bob = await key_client("bob")
    bobs = (await submit(bob, b"bob's")).json()["id"]
    assert [j["id"] for j in (await alice.get("/v1/jobs")).json()["items"]] == [job_id]
    assert [j["id"] for j in (await bob.get("/v1/jobs")).json()["items"]] == [bobs]
    for status in ("succeeded", "queued"):
        listed = (await bob.get("/v1/jobs", params={"status": status})).json()["items"]
        assert job_id not in [j["id"] for j in listed]


async def test_a_foreign_and_a_missing_id_run_the_same_queries(
    app: FastAPI, key_client: KeyClient, alice_job: tuple[Any, str]
) -> None:
    """The deterministic half of "no timing tell": both lookups execute the same SQL, the
    same number of times (one indexed query), so there is no extra work to measure."""
    _, job_id = alice_job
    bob = await key_client("bob")
    engine = app.state.services.jobs.db.read_engine.sync_engine
    # On SQLite the poll reads on a plain sqlite3 connection of its own (`poll_reads`).
    quick = getattr(app.state.services.jobs.poll_reads, "quick", None)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    traces = []
    for asked in (job_id, MISSING):
        seen.clear()
        event.listen(engine, "before_cursor_execute", record)
        if quick is not None:  # its trace has the values bound: the id, in one of the two
            quick.connection().set_trace_callback(
                lambda sql, asked=asked: seen.append(sql.replace(asked, "?"))
            )
        try:
            assert (await bob.get(f"/v1/jobs/{asked}")).status_code == 404
        finally:
            event.remove(engine, "before_cursor_execute", record)
            if quick is not None:
                quick.connection().set_trace_callback(None)
        traces.append([s for s in seen if "FROM jobs" in s])
    assert traces[0] == traces[1]
    assert len(traces[0]) == 1


async def test_a_foreign_and_a_missing_id_take_the_same_time(
    key_client: KeyClient, alice_job: tuple[Any, str]
) -> None:
    """The measured half: interleaved repeated calls; medians within a wide band (the bound
    only catches a real tell, such as an extra query or a file opened, not machine noise)."""
    _, job_id = alice_job
    bob = await key_client("bob", rate_limit=0)
    timings: dict[str, list[float]] = {job_id: [], MISSING: []}
    for _ in range(150):
        for asked in (job_id, MISSING):
            start = time.perf_counter()
            await bob.get(f"/v1/jobs/{asked}/result")
            timings[asked].append(time.perf_counter() - start)
    ratio = statistics.median(timings[job_id]) / statistics.median(timings[MISSING])
    assert 0.5 < ratio < 2.0, ratio
