"""A worker's slot is held while a job's attempt runs, not while its end is being recorded: the
next job is taken and run while the last one settles (a one-slot worker used to wait for the
settling commit and procrastinate's own before it fetched again)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from filejob.jobs.control import RunOutcome
from filejob.jobs.runner import JobRunner, Started
from tests.support.jobs import submit, wait_for_status
from tests.support.queue import queue_entries
from tests.support.wait import wait_until_async


@pytest.mark.parametrize("settings_overrides", [{"workers": 1}], ids=["one-slot-worker"])
async def test_the_next_job_runs_while_the_last_one_settles(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    settling, release = asyncio.Event(), asyncio.Event()
    held: list[str] = []
    real_finish = JobRunner.finish

    async def first_settles_when_released(self: JobRunner, started: Started) -> RunOutcome:
        if not held:
            held.append(started.job.id)
            settling.set()
            await release.wait()
        return await real_finish(self, started)

    monkeypatch.setattr(JobRunner, "finish", first_settles_when_released)
    first = (await submit(client, b"first")).json()["id"]

    async def first_is_settling() -> bool:
        return settling.is_set()

    await wait_until_async(first_is_settling)
    second = (await submit(client, b"second")).json()["id"]
    try:
        done = await wait_for_status(client, second, "succeeded", "failed")
    finally:
        release.set()
    assert done["status"] == "succeeded" and held == [first]
    assert (await wait_for_status(client, first, "succeeded", "failed"))["status"] == "succeeded"

    async def both_entries_ended() -> bool:
        ended = [await queue_entries(app, job_id) for job_id in (first, second)]
        return all(status == "succeeded" for [(_, status)] in ended)

    await wait_until_async(both_entries_ended)
