"""A job's results listed (in its JSON and at /results), each downloaded whole, by ranges and by
HEAD through its own signed link, from a processor in a thread or in a child process; a retry
keeps only the last attempt's results; reuse copies every one; single-result jobs unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.results.split_jobs import (
    CONTENT,
    described,
    expected,
    listed,
    sha256,
    split_job,
)
from tests.support.jobs import submit, wait_for_status
from tests.support.problems import assert_problem
from tests.support.storage import stored

RunUntilIdle = Callable[[], Any]


async def test_every_result_is_listed_with_its_own_sha256(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=3)
    assert listed(job) == described(expected(parts=3))
    assert len({r["id"] for r in job["results"]}) == 4
    first = job["results"][0]
    # `result` is the first of them, as before.
    assert (job["result"]["filename"], job["result"]["sha256"]) == ("whole.bin", first["sha256"])
    assert all(r["step"] is None and r["url_expires_at"] for r in job["results"])
    answer = await client.get(f"/v1/jobs/{job['id']}/results")
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == job["results"]


@pytest.mark.parametrize("processor", ["split", "split-child"])
async def test_each_result_downloads_whole_by_range_and_head(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle, processor: str
) -> None:
    job = await split_job(client, run_until_idle, processor=processor, parts=2)
    for result, (name, data) in zip(job["results"], expected(parts=2), strict=True):
        whole = await client.get(result["url"])
        assert whole.status_code == 200, whole.text
        assert whole.content == data and sha256(whole.content) == result["sha256"]
        assert whole.headers["etag"] == f'"{result["sha256"]}"'
        assert whole.headers["repr-digest"].startswith("sha-256=:")
        assert f'filename="{name}"' in whole.headers["content-disposition"]
        part = await client.get(result["url"], headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == data[10:100]
        assert part.headers["content-range"] == f"bytes 10-99/{len(data)}"
        head = await client.head(result["url"])
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["repr-digest"] == whole.headers["repr-digest"]
        same = await client.get(result["url"], headers={"If-None-Match": whole.headers["etag"]})
        assert same.status_code == 304
    text = job["results"][1]  # text/plain: shown inline when asked
    inline = await client.get(text["url"] + "&disposition=inline")
    assert inline.headers["content-disposition"].startswith("inline")


async def test_a_link_opens_its_own_result_only(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    job = await split_job(client, run_until_idle, parts=2)
    one, two = job["results"][1], job["results"][2]
    query = one["url"].split("?", 1)[1]
    borrowed = await client.get(f"/v1/jobs/{job['id']}/results/{two['id']}?{query}")
    assert_problem(borrowed, 403, "invalid_signature")
    assert (await client.get(one["url"])).status_code == 200
    missing = await client.get(f"/v1/jobs/{job['id']}/results/nosuchresult")
    assert_problem(missing, 404, "result_not_found")


async def test_a_job_without_results_yet_answers_as_result_does(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    failed = await submit(client, b"x", "slow", params={"fail": True, "steps": 1})
    await run_until_idle()
    job = await wait_for_status(client, failed.json()["id"], "failed")
    assert job["results"] == []
    assert_problem(await client.get(f"/v1/jobs/{job['id']}/results"), 409, "job_failed")
    assert_problem(await client.get(f"/v1/jobs/{job['id']}/results.zip"), 409, "job_failed")
    assert_problem(await client.get("/v1/jobs/nosuchjob/results"), 404, "job_not_found")


async def test_a_single_result_job_lists_its_one_result(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    answer = await submit(client, b"one file in", "compress", params={"format": "gzip"})
    await run_until_idle()
    job = await wait_for_status(client, answer.json()["id"], "succeeded")
    [only] = job["results"]
    result = job["result"]
    assert (only["filename"], only["size"], only["sha256"]) == (
        result["filename"],
        result["size"],
        result["sha256"],
    )
    via_result = await client.get(result["url"])
    via_results = await client.get(only["url"])
    assert via_result.content == via_results.content
    assert sha256(via_results.content) == only["sha256"]


async def test_a_processor_may_emit_every_result(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    """`run()` returning None: the first emitted output is the job's `result`."""
    job = await split_job(client, run_until_idle, parts=2, emit_only=True)
    assert listed(job) == described(expected(parts=2, emit_only=True))
    assert job["result"]["filename"] == "part-1.txt"
    first = await client.get(job["result"]["url"])
    assert first.content == expected(parts=2, emit_only=True)[0][1]


@pytest.mark.parametrize("processor", ["split", "split-child"])
async def test_a_processor_may_emit_from_threads_of_its_own(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle, processor: str
) -> None:
    job = await split_job(client, run_until_idle, processor=processor, parts=6, threads=True)
    # Listed in the order they were opened, which the threads decided.
    assert sorted(listed(job)) == sorted(described(expected(parts=6)))
    assert listed(job)[0][0] == "whole.bin"
    for result in job["results"]:
        assert sha256((await client.get(result["url"])).content) == result["sha256"]


@pytest.mark.parametrize("processor", ["split", "split-child"])
async def test_a_retry_keeps_only_the_last_attempts_results(
    app: FastAPI,
    client: httpx.AsyncClient,
    run_until_idle: RunUntilIdle,
    tmp_path: Path,
    processor: str,
) -> None:
    """The first attempt emits its outputs, then fails: none of them is kept, and the job's
    results are all the second attempt's."""
    marker = tmp_path / "failed-once"
    job = await split_job(
        client, run_until_idle, processor=processor, parts=2, fail_once=str(marker)
    )
    assert marker.exists() and job["attempts"] == 2
    assert listed(job) == described(expected(parts=2))
    keys = [key for key in await stored(app) if key.startswith("results/")]
    assert keys == sorted(f"results/{job['id']}.2{suffix}" for suffix in ("", ".1", ".2"))
    assert not [name for name in await stored(app) if name.startswith("tmp/")]
    for result, (_, data) in zip(job["results"], expected(parts=2), strict=True):
        assert (await client.get(result["url"])).content == data


async def test_reuse_copies_every_result(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    earlier = await split_job(client, run_until_idle, parts=2)
    again = await client.post(
        "/v1/jobs",
        data={"processor": "split", "params": '{"parts": 2}', "reuse": "true"},
        files={"file": ("again.bin", CONTENT, "application/octet-stream")},
    )
    assert again.status_code == 202, again.text
    job = again.json()
    assert job["status"] == "succeeded" and listed(job) == listed(earlier)
    assert {r["id"] for r in job["results"]}.isdisjoint(r["id"] for r in earlier["results"])
    assert (await client.delete(f"/v1/jobs/{earlier['id']}")).status_code == 204
    for result, (_, data) in zip(job["results"], expected(parts=2), strict=True):
        assert (await client.get(result["url"])).content == data
    listing = (await client.get(f"/v1/jobs/{job['id']}/results")).json()["items"]
    assert [r["id"] for r in listing] == [r["id"] for r in job["results"]]
    keys = [key for key in await stored(app) if key.startswith("results/")]
    assert keys == sorted(f"results/{job['id']}.0{suffix}" for suffix in ("", ".1", ".2"))
