"""Submitting jobs and waiting on them over HTTP: in-process (an `httpx.AsyncClient` on the
ASGI app) and against live servers (the project's own client, `filejob.client.api`)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from filejob.client.api import FINAL, FilejobClient
from tests.support.processors import GATES
from tests.support.wait import wait_until, wait_until_async

# -- in-process ---------------------------------------------------------------------------


async def submit(
    client: httpx.AsyncClient,
    content: bytes,
    processor: str = "checksum",
    *,
    filename: str = "input.bin",
    content_type: str = "application/octet-stream",
    params: dict[str, Any] | str | None = None,
    delete_after_download: bool | None = None,
    max_attempts: int | None = None,
    timeout_seconds: float | None = None,
    callback_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /v1/jobs with `content` as the file; fields left at None are not sent."""
    data: dict[str, str] = {"processor": processor}
    if params is not None:
        data["params"] = params if isinstance(params, str) else json.dumps(params)
    if delete_after_download is not None:
        data["delete_after_download"] = "true" if delete_after_download else "false"
    if max_attempts is not None:
        data["max_attempts"] = str(max_attempts)
    if timeout_seconds is not None:
        data["timeout_seconds"] = str(timeout_seconds)
    if callback_url is not None:
        data["callback_url"] = callback_url
    return await client.post(
        "/v1/jobs",
        data=data,
        files={"file": (filename, content, content_type)},
        headers=headers,
    )


async def wait_for_status(client: httpx.AsyncClient, job_id: str, *statuses: str) -> dict[str, Any]:
    """Poll the job as a client would until it reaches one of `statuses` (bounded: 30 s)."""

    async def reached() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["status"] in statuses else None

    return await wait_until_async(
        reached, timeout=30, interval=0.01, message=f"job {job_id} not {'/'.join(statuses)}"
    )


async def running_gated(client: httpx.AsyncClient, gate: str, **fields: Any) -> str:
    """A `slow` job, running, that holds until the test sets `GATES[gate]`."""
    GATES[gate] = threading.Event()
    job_id = (await submit(client, b"x", "slow", params={"gate": gate}, **fields)).json()["id"]
    await wait_for_status(client, job_id, "running")
    return str(job_id)


# -- live servers -------------------------------------------------------------------------


def submit_bytes(
    client: FilejobClient,
    content: bytes,
    processor: str,
    params: dict[str, Any] | None = None,
    *,
    filename: str = "input.bin",
    delete_after_download: bool = False,
) -> dict[str, Any]:
    """`client.submit` of `content` (the client uploads from a file: a temporary one named
    `filename`); the accepted job."""
    with tempfile.TemporaryDirectory(prefix="filejob-upload-") as folder:
        path = Path(folder) / filename
        path.write_bytes(content)
        return client.submit(path, processor, params, delete_after_download=delete_after_download)


def wait_final(client: FilejobClient, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it is final (succeeded, failed, cancelled or expired)."""

    def final() -> dict[str, Any] | None:
        job = client.job(job_id)
        return job if job["status"] in FINAL else None

    return wait_until(final, timeout=timeout, message=f"job {job_id} not final after {timeout} s")


def jobs_by_id(client: FilejobClient) -> dict[str, dict[str, Any]]:
    """The newest 500 jobs, by id."""
    return {job["id"]: job for job in client.jobs(limit=500)}


def submit_slow(
    client: FilejobClient, steps: int, processor: str = "slow", step_seconds: float = 0.05
) -> str:
    """A `slow` (or `slow-child`) job over 64 KiB: `steps` steps of `step_seconds` each."""
    params = {"steps": steps, "step_seconds": step_seconds}
    content = os.urandom(64 * 1024)
    return str(submit_bytes(client, content, processor, params, filename="in.bin")["id"])


def wait_running(client: FilejobClient, job_ids: list[str], timeout: float = 60) -> None:
    """Until every job is `running` and has reported progress (so is under way)."""

    def all_running() -> bool:
        jobs = [client.job(job_id) for job_id in job_ids]
        return all(job["status"] == "running" and job["progress"] > 0 for job in jobs)

    wait_until(all_running, timeout=timeout, message=f"jobs {job_ids} not all running")
