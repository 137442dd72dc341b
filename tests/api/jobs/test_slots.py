"""The embedded executor's slots: `workers` jobs between their claim and the end of their
processor; recording how a job ended does not keep the next one waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from filejob.app import create_app
from filejob.config import Settings
from tests.support.jobs import submit, wait_for_status
from tests.support.processors import test_registry


@pytest.fixture
async def one_slot(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    settings.executor = "inprocess"
    settings.workers = 1
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


async def test_the_next_job_runs_while_the_last_ones_outcome_is_recorded(
    one_slot: tuple[Any, httpx.AsyncClient],
) -> None:
    app, client = one_slot
    runner = app.state.services.executor.runner
    settle, held, release = runner._settle, asyncio.Event(), asyncio.Event()
    first: list[str] = []

    async def slow_settle(job: Any, ended: Any) -> Any:
        if job.id in first:
            held.set()
            await release.wait()
        return await settle(job, ended)

    runner._settle = slow_settle
    first.append((await submit(client, b"first", "checksum")).json()["id"])
    await asyncio.wait_for(held.wait(), 30)
    second = (await submit(client, b"second", "checksum")).json()["id"]
    # One slot, and the first job still being recorded: the second one runs to its end.
    assert (await wait_for_status(client, second, "succeeded"))["attempts"] == 1
    assert (await client.get(f"/v1/jobs/{first[0]}")).json()["status"] == "running"
    release.set()
    assert (await wait_for_status(client, first[0], "succeeded"))["attempts"] == 1
