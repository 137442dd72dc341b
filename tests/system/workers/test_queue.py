"""The shared queue from the API's side: the row and its queue entry in one transaction,
cancel through procrastinate's abort, a worker's graceful stop, and an API server that never
runs a processor itself."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import procrastinate
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from filejob.app import create_app
from filejob.config import Settings
from filejob.db.deployment import record_executor
from filejob.db.engine import Database
from filejob.jobs.executors.procrastinate import ProcrastinateExecutor
from filejob.jobs.repository import JobRepository
from filejob.worker import forget_finished_entries
from tests.support.jobs import running_gated, submit, wait_for_status
from tests.support.ports import free_port
from tests.support.processors import GATES, test_registry
from tests.support.queue import queue_entries, running_worker
from tests.support.storage import stored
from tests.support.wait import wait_until_async


async def counts(app: FastAPI) -> tuple[int, int]:
    """Job rows and queue entries."""
    async with app.state.services.jobs.db.read() as session:
        rows = await session.scalar(text("SELECT count(*) FROM jobs"))
        entries = await session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))
    return int(rows or 0), int(entries or 0)


async def test_the_row_and_its_queue_entry_commit_together(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add = JobRepository.add

    async def add_then_fail(self: JobRepository, job: Any) -> Any:
        await real_add(self, job)  # the entry is already written in this transaction
        raise RuntimeError("the database went away mid-commit")

    monkeypatch.setattr(JobRepository, "add", add_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        await submit(client, b"lost", "checksum")
    assert await counts(app) == (0, 0)  # neither the row nor its entry
    assert await stored(app) == []  # nor the input

    monkeypatch.setattr(JobRepository, "add", real_add)
    job_id = (await submit(client, b"kept", "checksum")).json()["id"]
    [(entry, _)] = await queue_entries(app, job_id)
    async with app.state.services.jobs.db.read() as session:
        job = await JobRepository(session).get(job_id)
    assert job is not None and job.queue_ref == entry
    assert (await wait_for_status(client, job_id, "succeeded"))["attempts"] == 1


async def test_cancel_reaches_the_worker_and_stops_the_processor(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    job_id = await running_gated(client, "queue-cancel")  # never opened: only a cancel ends it
    assert isinstance(app.state.services.executor, ProcrastinateExecutor)
    assert app.state.services.executor.stop_timeout == 5.0

    response = await client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 204
    # The worker stopped it (within the executor's 5 s, or the API would have settled the row
    # itself and the entry would still be `doing`).
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"

    async def aborted() -> bool:  # procrastinate records it just after the row is settled
        return [status for _, status in await queue_entries(app, job_id)] == ["aborted"]

    await wait_until_async(aborted)


async def test_cancel_kills_a_child_process_processor(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    pid_file = tmp_path / "spin.pid"
    job_id = (
        await submit(client, b"x", "spin", params={"seconds": 60, "pid_file": str(pid_file)})
    ).json()["id"]
    await wait_for_status(client, job_id, "running")

    async def child_started() -> bool:
        return pid_file.exists() and bool(pid_file.read_text())

    await wait_until_async(child_started)
    pid = int(pid_file.read_text())
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"

    async def child_gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_until_async(child_gone)


@pytest.fixture
async def app_without_worker(settings: Settings) -> Any:
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def bare_client(app_without_worker: FastAPI) -> Any:
    transport = httpx.ASGITransport(app=app_without_worker)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        yield client


async def test_the_api_server_never_runs_a_processor(
    app_without_worker: FastAPI, bare_client: httpx.AsyncClient
) -> None:
    app = app_without_worker
    assert not app.state.services.executor.runs_jobs_here
    job_id = (await submit(bare_client, b"waits", "checksum")).json()["id"]
    job = (await bare_client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "queued" and job["attempts"] == 0
    assert [status for _, status in await queue_entries(app, job_id)] == ["todo"]

    async with running_worker(app.state.services.settings, test_registry()):
        done = await wait_for_status(bare_client, job_id, "succeeded", "failed")
    assert done["status"] == "succeeded"


async def test_a_stopping_worker_hands_its_running_job_back(
    app_without_worker: FastAPI, bare_client: httpx.AsyncClient
) -> None:
    app, client = app_without_worker, bare_client
    settings = app.state.services.settings
    GATES["queue-handback"] = threading.Event()
    job_id = (await submit(client, b"abc", "slow", params={"gate": "queue-handback"})).json()["id"]
    async with running_worker(settings, test_registry()):
        await wait_for_status(client, job_id, "running")
    # Stopped as on SIGTERM: after FILEJOB_SHUTDOWN_GRACE the job was interrupted and queued
    # again, that attempt not counted, and its entry is due for the next worker.
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "queued" and job["attempts"] == 0
    assert [status for _, status in await queue_entries(app, job_id)] == ["todo"]

    GATES["queue-handback"].set()
    async with running_worker(settings, test_registry()):
        done = await wait_for_status(client, job_id, "succeeded", "failed")
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert (await client.get(f"/v1/jobs/{job_id}/result")).content == b"abc"


async def test_a_retry_waits_in_the_queue_until_it_is_due(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert app.state.services.settings.retry_base_delay >= 1  # the default: 2 s
    params = {"key": os.urandom(8).hex(), "failures": 5, "kind": "retryable"}
    job_id = (await submit(client, b"x", "flaky", params=params)).json()["id"]

    async def entry() -> tuple[str, datetime]:
        async with app.state.services.jobs.db.read() as session:
            status, scheduled_at = (
                await session.execute(
                    text(
                        "SELECT status::text, scheduled_at FROM procrastinate_jobs "
                        "WHERE args->>'job_id' = :id"
                    ),
                    {"id": job_id},
                )
            ).one()  # one entry all along
        return status, scheduled_at

    async def waiting() -> bool:
        # The row says queued before the worker hands its entry back to the queue: wait
        # for both (the hand-back follows the row's commit).
        body = (await client.get(f"/v1/jobs/{job_id}")).json()
        return body["status"] == "queued" and body["attempts"] == 1 and (await entry())[0] == "todo"

    await wait_until_async(waiting)
    body = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert body["error"]["code"] == "flaky"
    status, scheduled_at = await entry()
    # Back to `todo` and due when the job says its next attempt is.
    assert status == "todo"
    due = datetime.fromisoformat(body["next_attempt_at"])
    assert abs((scheduled_at - due).total_seconds()) < 1
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"


async def switch_executor(settings: Settings, executor: str) -> None:
    db = Database(settings.database_url)
    try:
        await record_executor(db, executor)
    finally:
        await db.dispose()


async def test_jobs_accepted_before_the_switch_to_workers_are_run(
    settings: Settings, app_without_worker: FastAPI, bare_client: httpx.AsyncClient
) -> None:
    # An in-process server on the same PostgreSQL accepted jobs and was stopped before
    # running them (as on a switch-over, after its shutdown handed them back).
    before = settings.model_copy(update={"executor": "inprocess", "workers": 1})
    GATES["switch-over"] = threading.Event()
    await switch_executor(settings, "inprocess")  # what `filejob db upgrade` records
    old = create_app(before, registry=test_registry())
    async with old.router.lifespan_context(old):
        transport = httpx.ASGITransport(app=old)
        async with httpx.AsyncClient(transport=transport, base_url="http://old") as client:
            holder = (await submit(client, b"a", "slow", params={"gate": "switch-over"})).json()
            await wait_for_status(client, holder["id"], "running")
            waiting = [(await submit(client, b"b%d" % n, "checksum")).json() for n in range(3)]
        old.state.services.executor.stop_timeout = 0.5
    ids = [holder["id"], *(job["id"] for job in waiting)]
    for job_id in ids:
        job = (await bare_client.get(f"/v1/jobs/{job_id}")).json()
        assert job["status"] == "queued" and await queue_entries(app_without_worker, job_id) == []

    GATES["switch-over"].set()
    await switch_executor(settings, "procrastinate")
    async with running_worker(settings, test_registry()):
        for job_id in ids:
            assert (await wait_for_status(bare_client, job_id, "succeeded"))["attempts"] == 1


async def test_a_worker_serves_the_metrics_of_its_jobs(
    app_without_worker: FastAPI, bare_client: httpx.AsyncClient
) -> None:
    port = free_port()
    settings = app_without_worker.state.services.settings
    async with running_worker(settings, test_registry(), metrics_port=port):
        job_id = (await submit(bare_client, b"counted", "checksum")).json()["id"]
        await wait_for_status(bare_client, job_id, "succeeded")
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'filejob_jobs_finished_total{processor="checksum",status="succeeded"} 1.0' in text
    assert 'filejob_job_duration_seconds_count{processor="checksum"} 1.0' in text


async def test_long_ended_queue_entries_are_deleted_and_their_jobs_stay(
    app: FastAPI, client: httpx.AsyncClient, queue_app: procrastinate.App
) -> None:
    old = (await submit(client, b"old", "checksum")).json()["id"]
    new = (await submit(client, b"new", "checksum")).json()["id"]
    for job_id in (old, new):
        await wait_for_status(client, job_id, "succeeded")

    async def entries_ended() -> bool:
        # The row says `succeeded` a moment before procrastinate records its entry's end (an
        # event that a backdating done before it would miss).
        ended = [await queue_entries(app, job_id) for job_id in (old, new)]
        return all(status == "succeeded" for [(_, status)] in ended)

    await wait_until_async(entries_ended)
    [(entry, _)] = await queue_entries(app, old)
    async with app.state.services.jobs.db.write() as session:  # it ended two days ago
        await session.execute(
            text("UPDATE procrastinate_events SET at = at - interval '48 hours' WHERE job_id = :e"),
            {"e": entry},
        )
    await forget_finished_entries(queue_app, older_than=24 * 3600)
    assert await queue_entries(app, old) == []
    assert [status for _, status in await queue_entries(app, new)] == ["succeeded"]
    job = (await client.get(f"/v1/jobs/{old}")).json()
    assert job["status"] == "succeeded"
    assert (await client.get(f"/v1/jobs/{old}/result")).status_code == 200
