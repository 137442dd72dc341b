"""Per-attempt time limits: a job over time is stopped and fails with `timeout`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit, wait_for_status
from tests.support.storage import stored_files


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_job_seconds": 60, "max_attempts": 1}


def only_inputs(data_dir: Path) -> bool:
    return [p.parent.parent.name for p in stored_files(data_dir)] == ["inputs"]


async def test_cooperative_processor_is_stopped_at_its_deadline(
    client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    params = {"steps": 10_000, "step_seconds": 0.01}
    response = await submit(client, b"x" * 1000, "slow", params=params, timeout_seconds=0.3)
    job_id = response.json()["id"]
    assert response.json()["timeout_seconds"] == 0.3
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "timeout"
    assert "0.3 s" in job["error"]["message"]
    assert only_inputs(data_dir)  # no partial result


async def test_processor_that_ignores_the_stop_is_abandoned(
    client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job_id = (
        await submit(client, b"x", "stubborn", params={"seconds": 4}, timeout_seconds=0.2)
    ).json()["id"]
    await run_until_idle()  # returns after the deadline plus the stop grace, not after 4 s
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "timeout"
    assert only_inputs(data_dir)


async def test_cancel_of_a_processor_that_ignores_it_returns(
    client: httpx.AsyncClient, data_dir: Path
) -> None:
    job_id = (await submit(client, b"x", "stubborn", params={"seconds": 4})).json()["id"]
    await wait_for_status(client, job_id, "running")
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"
    assert only_inputs(data_dir)


async def test_limits_default_to_the_processor_and_are_capped(client: httpx.AsyncClient) -> None:
    default = (await submit(client, b"x", "stubborn", params={"seconds": 0})).json()
    assert default["timeout_seconds"] == 60  # the processor's 120 s, capped by the server
    checksum = (await submit(client, b"x", "checksum")).json()
    assert checksum["timeout_seconds"] == 60
    bad = await submit(client, b"x", "checksum", timeout_seconds=0)
    assert bad.status_code == 422
