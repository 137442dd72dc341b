"""Every output of a job is one of its files: delete-after-download waits for all of them (one by
one or by the zip), and retention, a delete, the quota and the orphan sweep count each one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from filejob.jobs.sweeper import Sweeper
from tests.api.results.split_jobs import CONTENT, split_job
from tests.support.storage import stored

RunUntilIdle = Callable[[], Any]


async def files_of(app: FastAPI, job_id: str) -> list[str]:
    return [key for key in await stored(app) if job_id in key]


async def status_of(client: httpx.AsyncClient, job_id: str) -> str:
    return str((await client.get(f"/v1/jobs/{job_id}")).json()["status"])


async def test_delete_after_download_waits_for_every_result(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=2, delete_after_download=True)
    first, one, two = job["results"]
    assert len(await files_of(app, job["id"])) == 4  # the input and three results
    # Parts and HEADs are not downloads of the whole.
    assert (await client.get(two["url"], headers={"Range": "bytes=0-9"})).status_code == 206
    assert (await client.head(two["url"])).status_code == 200
    assert (await client.get(job["result"]["url"])).status_code == 200  # the first, via /result
    assert (await client.get(one["url"])).status_code == 200
    assert await status_of(client, job["id"]) == "succeeded"
    assert len(await files_of(app, job["id"])) == 4
    assert (await client.get(first["url"])).status_code == 200  # again: counts once
    assert await status_of(client, job["id"]) == "succeeded"
    assert (await client.get(two["url"])).status_code == 200  # the last one
    assert await status_of(client, job["id"]) == "expired"
    assert await files_of(app, job["id"]) == []
    assert (await client.get(one["url"])).status_code == 410


async def test_a_whole_zip_is_a_download_of_every_result(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=2, delete_after_download=True)
    assert (await client.head(f"/v1/jobs/{job['id']}/results.zip")).status_code == 200
    assert await status_of(client, job["id"]) == "succeeded"
    zipped = await client.get(f"/v1/jobs/{job['id']}/results.zip")
    assert zipped.status_code == 200
    assert await status_of(client, job["id"]) == "expired"
    assert await files_of(app, job["id"]) == []
    gone = await client.get(f"/v1/jobs/{job['id']}/results.zip")
    assert gone.status_code == 410 and gone.json()["code"] == "result_gone"


async def test_a_single_result_goes_after_its_download_as_before(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    answer = await client.post(
        "/v1/jobs",
        data={"processor": "checksum", "delete_after_download": "true"},
        files={"file": ("in.bin", b"once", "application/octet-stream")},
    )
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{answer.json()['id']}")).json()
    assert (await client.get(job["results"][0]["url"])).status_code == 200
    assert await status_of(client, job["id"]) == "expired"
    assert await files_of(app, job["id"]) == []


async def test_retention_and_delete_remove_every_result(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    kept = await split_job(client, run_until_idle, parts=3)
    expired = await split_job(client, run_until_idle, parts=3)
    deleted = await split_job(client, run_until_idle, parts=3)
    assert len(await files_of(app, expired["id"])) == 5
    assert await app.state.services.jobs.expire(expired["id"])
    assert await files_of(app, expired["id"]) == []
    gone = await client.get(expired["results"][2]["url"])
    assert gone.status_code == 410
    assert (await client.get(f"/v1/jobs/{expired['id']}")).json()["results"] == []
    assert (await client.delete(f"/v1/jobs/{deleted['id']}")).status_code == 204
    assert await files_of(app, deleted["id"]) == []
    assert len(await files_of(app, kept["id"])) == 5


async def test_the_quota_counts_every_output(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=3)
    used = (await client.get("/v1/limits")).json()["storage_used_bytes"]
    assert used == len(CONTENT) + sum(r["size"] for r in job["results"]) == 3 * len(CONTENT)
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert (await client.get("/v1/limits")).json()["storage_used_bytes"] == 0


async def test_the_orphan_sweep_keeps_every_result_and_only_them(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=2)
    storage = app.state.services.jobs.storage
    # A stray output of an attempt that never became the job's (its process died).
    writer = await storage.create(f"results/{job['id']}.7.2")
    writer.file.write(b"stray")
    await writer.commit()
    before = await files_of(app, job["id"])
    report = await Sweeper(app.state.services.jobs, result_ttl=3600, orphan_grace=0).sweep_once()
    assert report.orphans == 1
    after = await files_of(app, job["id"])
    assert after == [key for key in before if key != f"results/{job['id']}.7.2"]
    assert len(after) == 4
