"""GET /v1/jobs/{id}/results.zip: every result in one zip, made while it is sent, its length
known before its first byte, in memory that does not grow with the results' size."""

from __future__ import annotations

import gc
import io
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from filejob.api.downloads.zip import ResultsZip
from filejob.jobs.model import Job
from tests.api.results.split_jobs import described, expected, sha256, split_job
from tests.support.jobs import submit, wait_for_status

RunUntilIdle = Callable[[], Any]
MiB = 1024 * 1024


def members(data: bytes) -> list[tuple[str, int, str]]:
    """(name, size, sha256) of each member of the zip `data`, its CRCs checked."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return [
            (info.filename, info.file_size, sha256(archive.read(info)))
            for info in archive.infolist()
        ]


async def test_the_zip_holds_every_result(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=3)
    url = f"/v1/jobs/{job['id']}/results.zip"
    head = await client.head(url)
    assert head.status_code == 200 and head.content == b""
    body = bytearray()
    async with client.stream("GET", url) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert answer.headers["content-length"] == head.headers["content-length"]
        assert f'filename="{job["id"]}.zip"' in answer.headers["content-disposition"]
        async for chunk in answer.aiter_raw(64 * 1024):
            body += chunk
    assert len(body) == int(head.headers["content-length"])
    assert members(bytes(body)) == described(expected(parts=3))
    assert members(bytes(body)) == [(r["filename"], r["size"], r["sha256"]) for r in job["results"]]


async def test_a_single_result_jobs_zip_holds_its_result(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    answer = await submit(client, b"abc", "checksum", filename="a.txt")
    await run_until_idle()
    job = await wait_for_status(client, answer.json()["id"], "succeeded")
    zipped = await client.get(f"/v1/jobs/{job['id']}/results.zip")
    [(name, size, digest)] = members(zipped.content)
    assert (name, size, digest) == (
        job["result"]["filename"],
        job["result"]["size"],
        job["result"]["sha256"],
    )


async def _peak_while_zipping(app: FastAPI, job_id: str) -> tuple[int, int]:
    """Read the job's zip chunk by chunk, as a response sends it: (bytes, peak of memory
    allocated meanwhile)."""
    jobs = app.state.services.jobs
    job = Job(**await jobs.poll(job_id, None))
    results = await jobs.results.stored(job)
    gc.collect()
    tracemalloc.start()
    archive = ResultsZip(jobs.storage, results)
    try:
        total = 0
        while chunk := await archive.next_chunk():
            total += len(chunk)
            del chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        archive.close()
    assert total == archive.length
    return total, peak


async def test_the_zip_is_made_in_memory_that_does_not_grow_with_the_results(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    small = await split_job(client, run_until_idle, b"s" * (2 * MiB), parts=2)
    large = await split_job(client, run_until_idle, b"L" * (8 * MiB), parts=2)
    _, small_peak = await _peak_while_zipping(app, small["id"])
    large_total, large_peak = await _peak_while_zipping(app, large["id"])
    assert large_total > 15 * MiB  # the input's copy and its two halves
    # A few chunks at a time, whatever the size: not the results, not a quarter of them.
    assert large_peak < small_peak + MiB
    assert large_peak < large_total // 4
