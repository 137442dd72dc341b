"""The runner brings every claimed job to a final state, whatever goes wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from filejob import worker
from filejob.jobs.executors import inprocess
from filejob.jobs.model import Job
from tests.support.faults import fail_finishing
from tests.support.jobs import submit, wait_for_status
from tests.support.settings import PROFILES
from tests.support.storage import stored_files


async def test_processor_bug_fails_job_without_leftovers(
    client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job = (await submit(client, b"input", "crash")).json()
    await run_until_idle()
    body = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert body["status"] == "failed"
    assert body["error"]["code"] == "processor_error"
    assert "ZeroDivisionError" in body["error"]["message"]
    assert [p.parent.parent.name for p in stored_files(data_dir)] == ["inputs"]


async def _job_from_storage(app: Any, client: httpx.AsyncClient, **changes: Any) -> str:
    """A queued job whose row is changed as a restart might find it, then resumed."""
    services = app.state.services
    job_id = (await submit(client, b"abc", "compress")).json()["id"]
    await services.executor.run_until_idle()
    async with services.jobs.db.write() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(status="queued", **changes)
        )
    await services.executor.schedule(job_id)  # no open upload: read from storage
    await services.executor.run_until_idle()
    return job_id


async def test_params_no_longer_valid_fail_cleanly(app: Any, client: httpx.AsyncClient) -> None:
    job_id = await _job_from_storage(app, client, params={"format": "rar"})
    body = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert body["status"] == "failed" and body["error"]["code"] == "invalid_params"


async def test_missing_input_fails_cleanly(
    app: Any, client: httpx.AsyncClient, data_dir: Path
) -> None:
    job_id = await _job_from_storage(app, client, input_key="inputs/gone")
    body = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert body["status"] == "failed" and body["error"]["code"] == "input_missing"


async def test_job_reads_its_input_from_storage_when_no_upload_is_handed_over(
    app: Any, client: httpx.AsyncClient
) -> None:
    job_id = await _job_from_storage(app, client)
    body = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert body["status"] == "succeeded" and body["attempts"] == 2


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_run_whose_end_cannot_be_recorded_runs_again(
    app: Any, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    """The database fails as the attempt ends: neither its outcome nor the runner's fallback
    (`internal_error`) can be written. The row must not stay `running` until the next start:
    the job runs again, that attempt counted as interrupted."""
    monkeypatch.setattr(inprocess, "RUNNER_ERROR_DELAY", 0.05, raising=False)
    monkeypatch.setattr(worker, "RUNNER_ERROR_DELAY", 0.05)
    refused = fail_finishing(monkeypatch, times=2)
    job_id = (await submit(client, b"abc")).json()["id"]
    done = await wait_for_status(client, job_id, "succeeded", "failed")
    assert refused == ["succeeded", "failed"]
    assert done["status"] == "succeeded" and done["attempts"] == 2
    result = await client.get(f"/v1/jobs/{job_id}/result")
    assert hashlib.sha256(result.content).hexdigest() == done["result"]["sha256"]
