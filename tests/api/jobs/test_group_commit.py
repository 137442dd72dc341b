"""Group commit of new jobs on SQLite (jobs/commits.py): submits that wait for the one writer
commit together, in one transaction with one INSERT, and yet each keeps its own limits and its
own failure. The writer is held by the test while the submits gather, so that the grouping is
certain, not a matter of timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from filejob.jobs import repository
from filejob.jobs.model import Job
from tests.support.auth import tenant
from tests.support.jobs import submit
from tests.support.storage import job_rows, stored
from tests.support.wait import wait_until_async

Submit = Callable[[], Coroutine[Any, Any, httpx.Response]]


@asynccontextmanager
async def writer_held(app: FastAPI) -> AsyncIterator[None]:
    """The writer connection and SQLite's write lock, held by a transaction of the test."""
    async with app.state.services.jobs.db.write() as session:
        await session.connection()
        yield


async def submitted_together(app: FastAPI, submits: Sequence[Submit]) -> list[Any]:
    """Run `submits` while the writer is held, until every one waits for its group; then let
    them commit. Their responses (or exceptions), in order."""
    inserts = app.state.services.jobs.inserts
    async with writer_held(app):
        tasks = [asyncio.create_task(run()) for run in submits]

        async def all_waiting() -> bool:
            return inserts.waiting == len(submits)

        await wait_until_async(all_waiting)
    return await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def job_inserts(app: FastAPI) -> Iterator[list[int]]:
    """The row count of each INSERT INTO jobs the writer runs, from now on."""
    counts: list[int] = []

    def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            counts.append(len(params) if many else 1)

    engine = app.state.services.jobs.db.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    yield counts
    event.remove(engine, "before_cursor_execute", seen)


async def test_submits_waiting_for_the_writer_commit_in_one_insert(
    app: FastAPI, client: httpx.AsyncClient, job_inserts: list[int], run_until_idle: Any
) -> None:
    runs = [lambda n=n: submit(client, b"file %d" % n) for n in range(5)]
    responses = await submitted_together(app, runs)
    assert [r.status_code for r in responses] == [202] * 5
    assert job_inserts == [5]  # one statement, one transaction, for the five rows
    for response in responses:  # each 202 came after its row was committed
        job_id = response.json()["id"]
        assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 200
    await run_until_idle()


async def test_limits_hold_inside_a_group(
    app: FastAPI, job_inserts: list[int], run_until_idle: Any
) -> None:
    alice = await tenant(app, "alice", max_active_jobs=2, rate_limit=0)
    bob = await tenant(app, "bob", max_storage_bytes=10_000, rate_limit=0)
    try:
        runs: list[Submit] = [lambda: submit(alice, b"a") for _ in range(4)]
        runs += [lambda: submit(bob, b"b" * 4000) for _ in range(3)]
        responses = await submitted_together(app, runs)
        statuses = [r.status_code for r in responses]
        assert sorted(statuses[:4]) == [202, 202, 429, 429]  # as if committed one by one
        assert sorted(statuses[4:]) == [202, 202, 413]
        [refused] = [r for r in responses[4:] if r.status_code == 413]
        assert refused.json()["used"] == 8000  # the two accepted before it in the group
        assert job_inserts == [4]
        assert len([key for key in await stored(app) if key.startswith("inputs/")]) == 4
        await run_until_idle()
    finally:
        await alice.aclose()
        await bob.aclose()


async def test_a_row_that_fails_fails_alone(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    job_inserts: list[int],
    run_until_idle: Any,
) -> None:
    real_row = repository.new_row

    def broken_for_bad_files(job: Job) -> dict[str, Any]:
        row = real_row(job)
        if job.input_filename == "bad.bin":
            row["status"] = None  # NOT NULL: this row's INSERT fails, nobody else's
        return row

    monkeypatch.setattr(repository, "new_row", broken_for_bad_files)
    runs = [
        lambda: submit(client, b"good 1"),
        lambda: submit(client, b"bad", filename="bad.bin"),
        lambda: submit(client, b"good 2"),
    ]
    good_1, bad, good_2 = await submitted_together(app, runs)
    assert isinstance(bad, IntegrityError)
    assert good_1.status_code == good_2.status_code == 202
    # The group's INSERT failed, then each row went alone (in a savepoint): two survived.
    assert job_inserts == [3, 1, 1, 1]
    assert await job_rows(app) == 2
    inputs = [key for key in await stored(app) if key.startswith("inputs/")]
    assert sorted(inputs) == sorted(f"inputs/{r.json()['id']}" for r in (good_1, good_2))
    await run_until_idle()
