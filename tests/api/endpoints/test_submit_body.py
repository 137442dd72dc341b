"""The 202 of an upload is written by the poll's serialiser (`job_json`), without building
the `JobOut` model: the bytes must be JobOut's all the same."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.api.schemas import JobOut
from filejob.jobs.model import Job
from tests.support.jobs import submit


async def test_the_202_body_is_jobouts_json(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = app.state.services.jobs
    accepted: list[Job] = []
    accept = jobs.accept

    async def keeping(*args: Any, **kwargs: Any) -> Job:
        accepted.append(job := await accept(*args, **kwargs))
        return job

    monkeypatch.setattr(jobs, "accept", keeping)
    response = await submit(client, b"hello", max_attempts=2, delete_after_download=True)
    assert response.status_code == 202, response.text
    [job] = accepted
    assert response.content == JobOut.of(job, app.state.services.links).model_dump_json().encode()
