"""Processors with `isolation = "process"` run in a child that cancel and timeout terminate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest

from tests.support.jobs import submit, wait_for_status
from tests.support.settings import PROFILES
from tests.support.storage import stored
from tests.support.wait import wait_until_async


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"retry_base_delay": 0.01, "retry_max_delay": 0.02}


def child_is_gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    assert pid != os.getpid()  # it really ran in another process
    return not psutil.pid_exists(pid)


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """On S3 the child reads a local copy of the input and fills a local temp file."""
    return request.param


async def only_inputs(app: Any) -> bool:
    """Nothing left but the input: no result, no partial file, no staged copy."""
    return [key.split("/")[0] for key in await stored(app)] == ["inputs"]


async def test_runs_in_a_child_and_reports_progress(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = (await submit(client, b"data", "spin", params={"seconds": 0.5})).json()["id"]
    running = await wait_for_status(client, job_id, "running")
    assert running["status"] == "running"
    await run_until_idle()
    done = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert done["status"] == "succeeded" and done["result"]["size"] == len(b"partialdata")
    body = (await client.get(done["result"]["url"])).content
    assert body == b"partialdata"


async def test_cancel_terminates_the_child(
    app: Any, client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    params = {"seconds": 60, "pid_file": str(pid_file)}
    job_id = (await submit(client, b"data", "spin", params=params)).json()["id"]
    await wait_for_status(client, job_id, "running")

    async def child_started() -> bool:
        return pid_file.exists() and bool(pid_file.read_text())

    await wait_until_async(child_started)
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"
    assert child_is_gone(pid_file)  # the CPU-bound child is gone, not abandoned
    assert await only_inputs(app)


async def test_timeout_terminates_the_child(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    params = {"seconds": 60, "pid_file": str(pid_file)}
    # 3 s: the clock starts as the child is spawned, and on a loaded machine 0.5 s sometimes
    # ended the job before the child had written its pid.
    job_id = (await submit(client, b"data", "spin", params=params, timeout_seconds=3)).json()["id"]
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "timeout"
    assert child_is_gone(pid_file)
    assert await only_inputs(app)


async def test_a_child_that_keeps_dying_is_retried_then_fails_as_crashed(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    """Dying without a word is an interrupted attempt (it may have been the OOM killer), not a
    verdict on the input: retried until its attempts are used up."""
    params = {"exit_code": 3}
    job_id = (await submit(client, b"data", "spin", params=params, max_attempts=2)).json()["id"]
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "crashed"
    assert job["attempts"] == 2
    assert "exit code 3" in job["error"]["message"]
    assert await only_inputs(app)


async def test_errors_cross_the_process_boundary(
    client: httpx.AsyncClient, run_until_idle: Any, tmp_path: Path
) -> None:
    marker = str(tmp_path / "marker")
    params = {"seconds": 0, "retryable_key": marker}
    job_id = (await submit(client, b"data", "spin", params=params)).json()["id"]
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded" and job["attempts"] == 2


async def test_what_a_child_leaves_behind_dies_with_it(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = (await submit(client, b"x", "straggler")).json()["id"]
    await run_until_idle()
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"
    pid = int((await client.get(f"/v1/jobs/{job_id}/result")).text)

    async def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await wait_until_async(gone)
