"""Process-isolated processors run in a pool of warm worker processes: reused from job to job,
replaced when stopped or dead, retired after N jobs, after RSS growth, or when a job leaves a
process or a thread behind, and all ended when the server or worker shuts down."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest
from fastapi import FastAPI

from filejob.app import create_app
from filejob.config import Settings
from filejob.jobs.executors.inprocess import InProcessExecutor
from tests.support.jobs import submit, wait_for_status
from tests.support.pool_processors import pool_registry
from tests.support.queue import run_queue_until_idle, running_worker
from tests.support.settings import PROFILES
from tests.support.wait import wait_until_async

MiB = 1024 * 1024


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with the pool's test processors, and its worker on the distributed profile; on
    exit, both shut down as in production."""
    app = create_app(settings, registry=pool_registry())
    async with app.router.lifespan_context(app):
        if settings.executor == "procrastinate":
            async with running_worker(settings, pool_registry()):
                yield app
        else:
            yield app


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with serving(settings) as app:
        yield app


async def drain(app: FastAPI) -> None:
    executor = app.state.services.executor
    if isinstance(executor, InProcessExecutor):
        await executor.run_until_idle()
    else:
        await run_queue_until_idle(app.state.services.settings.database_url)


async def run_job(
    app: FastAPI, client: httpx.AsyncClient, processor: str = "hoard", **fields: Any
) -> dict[str, Any]:
    """Submit a job, run it to its end, and return it with its result's fields (JSON)."""
    job_id = (await submit(client, b"data", processor, **fields)).json()["id"]
    await drain(app)
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    if job["status"] == "succeeded":
        job.update(json.loads((await client.get(f"/v1/jobs/{job_id}/result")).content))
    return job


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def until_gone(pid: int) -> None:
    async def check() -> bool:
        return gone(pid)

    await wait_until_async(check, message=f"process {pid} is still running")


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_worker_runs_job_after_job(app: FastAPI, client: httpx.AsyncClient) -> None:
    jobs = [await run_job(app, client) for _ in range(3)]
    assert [job["status"] for job in jobs] == ["succeeded"] * 3
    pids = {job["pid"] for job in jobs}
    assert len(pids) == 1 and os.getpid() not in pids


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_stopped_worker_is_replaced_and_the_next_job_succeeds(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Any, how: str
) -> None:
    warm = (await run_job(app, client))["pid"]
    pid_file = tmp_path / "pid"
    params = {"seconds": 60, "pid_file": str(pid_file)}
    timeout = 1 if how == "timeout" else None
    submitted = await submit(client, b"data", "spin", params=params, timeout_seconds=timeout)
    job_id = submitted.json()["id"]
    await wait_for_status(client, job_id, "running")

    async def started() -> bool:
        return pid_file.exists() and bool(pid_file.read_text())

    await wait_until_async(started)
    assert int(pid_file.read_text()) == warm  # the warm worker took it
    if how == "cancel":
        assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    await drain(app)
    stopped = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert stopped["status"] == ("cancelled" if how == "cancel" else "failed")
    assert gone(warm)  # killed, not given back
    after = await run_job(app, client)
    assert after["status"] == "succeeded" and after["attempts"] == 1
    assert after["pid"] != warm


async def test_a_worker_found_dead_while_idle_is_replaced_without_losing_the_job(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    warm = (await run_job(app, client))["pid"]
    os.kill(warm, signal.SIGKILL)  # as the OOM killer would, between two jobs
    await until_gone(warm)
    after = await run_job(app, client)
    assert (after["status"], after["attempts"]) == ("succeeded", 1)
    assert after["pid"] != warm


@pytest.mark.parametrize("settings_overrides", [{"isolation_max_jobs": 2}])
async def test_a_worker_is_recycled_after_max_jobs(app: FastAPI, client: httpx.AsyncClient) -> None:
    pids = [(await run_job(app, client))["pid"] for _ in range(3)]
    assert pids[0] == pids[1] != pids[2]
    assert gone(pids[0])


@pytest.mark.parametrize("settings_overrides", [{"isolation_max_rss_growth": 64 * MiB}])
async def test_a_worker_is_recycled_once_its_rss_grows_past_the_limit(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # The first job warms the worker up (loads the processor); 16 + 16 MiB held is below the
    # limit, 48 MiB more is past it: that job ends, then its worker goes.
    pids = [
        (await run_job(app, client, params={"mebibytes": held}))["pid"]
        for held in (0, 16, 16, 48, 0)
    ]
    assert len(set(pids[:4])) == 1
    assert pids[4] != pids[3]
    assert gone(pids[3])


async def test_an_orphan_a_job_leaves_behind_does_not_outlive_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A shell's `cmd &`: the shell is reaped, its child orphaned, in the worker's group."""
    job = await run_job(app, client, "orphan")
    assert job["status"] == "succeeded"
    await until_gone(job["left"])
    assert gone(job["pid"])  # retired with it
    after = await run_job(app, client)
    assert after["status"] == "succeeded" and after["pid"] != job["pid"]


async def test_a_process_a_job_left_in_a_session_of_its_own_does_not_outlive_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Out of the worker's process group, still below the worker (a subreaper)."""
    job = await run_job(app, client, "escapee")
    assert job["status"] == "succeeded"
    await until_gone(job["left"])
    assert gone(job["pid"])


async def test_a_worker_a_job_left_a_thread_in_is_retired(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    job = await run_job(app, client, "lingerer")
    assert job["status"] == "succeeded"
    assert gone(job["pid"])
    assert (await run_job(app, client))["pid"] != job["pid"]


@pytest.mark.parametrize("profile", PROFILES)
async def test_no_worker_outlives_the_shutdown(settings: Settings, tmp_path: Any) -> None:
    """Two workers (two jobs at once), idle when the server (or `filejob worker`) stops."""
    files = [tmp_path / f"pid{n}" for n in range(2)]
    async with serving(settings) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
            for pid_file in files:
                params = {"seconds": 0.5, "pid_file": str(pid_file)}
                await submit(client, b"data", "spin", params=params)
            await drain(app)
        pids = {int(pid_file.read_text()) for pid_file in files}
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    assert all(gone(pid) for pid in pids)
