"""Jobs a stopped server left unfinished are run by the next start."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import pytest

from filejob.app import create_app
from filejob.config import Settings
from tests.support.jobs import submit, wait_for_status
from tests.support.processors import test_registry
from tests.support.settings import PROFILES


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Recovery and retries hold on both profiles (a restart re-reads PostgreSQL and S3)."""
    return request.param


async def test_running_and_queued_jobs_resume_after_restart(settings: Settings) -> None:
    settings.executor = "inprocess"  # a restart resumes its jobs; workers: tests/system/workers
    settings.workers = 1
    content = os.urandom(256 * 1024)
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            params = {"steps": 200, "step_seconds": 0.02}
            running = (await submit(client, content, "slow", params=params)).json()["id"]
            await wait_for_status(client, running, "running")
            queued = (await submit(client, content, "checksum")).json()["id"]
            assert (await client.get(f"/v1/jobs/{queued}")).json()["status"] == "queued"
    # Shut down mid-job: the running job went back to the queue, nothing was lost.

    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await app.state.services.executor.run_until_idle()
            first: Any = (await client.get(f"/v1/jobs/{running}")).json()
            second: Any = (await client.get(f"/v1/jobs/{queued}")).json()
            # A graceful shutdown gives the interrupted attempt back: it was not the job's fault.
            assert first["status"] == "succeeded" and first["attempts"] == 1
            assert second["status"] == "succeeded" and second["attempts"] == 1
            result = (await client.get(first["result"]["url"])).content
            assert hashlib.sha256(result).hexdigest() == hashlib.sha256(content).hexdigest()
