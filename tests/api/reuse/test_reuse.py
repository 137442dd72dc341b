"""Reuse by content (`reuse=true`): a job asking for what an earlier succeeded job of the same
owner made (same processor, same params, an input with the same sha256) succeeds at once with
a copy of that result, never running; without the flag, with other params, for another
owner, or once the earlier result is gone, the job runs. The copy is the new job's own: the
earlier job's delete leaves it downloadable. Form, raw body and tus alike; both profiles."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.uploads.tus import tus
from tests.support.jobs import submit, wait_for_status
from tests.support.settings import PROFILES

CONTENT = b"the same bytes, twice\n" * 1000
PARAMS = {"format": "gzip", "level": 6}


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


async def post(client: httpx.AsyncClient, *, reuse: bool, **fields: Any) -> dict[str, Any]:
    """A compress job on CONTENT, with `reuse` (a form field) and `fields`."""
    data = {"processor": "compress", "params": json.dumps(PARAMS), "reuse": str(reuse).lower()}
    data.update(fields)
    answer = await client.post(
        "/v1/jobs", data=data, files={"file": ("again.txt", CONTENT, "text/plain")}
    )
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def succeeded_once(client: httpx.AsyncClient, run_until_idle: Callable[[], Any]) -> Any:
    first = await submit(client, CONTENT, "compress", filename="first.txt", params=PARAMS)
    assert first.status_code == 202, first.text
    await run_until_idle()
    return await wait_for_status(client, first.json()["id"], "succeeded")


async def attempts_of(client: httpx.AsyncClient, job_id: str) -> list[Any]:
    answer = await client.get(f"/v1/jobs/{job_id}/attempts")
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def test_a_repeat_succeeds_at_once_with_its_own_copy(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    earlier = await succeeded_once(client, run_until_idle)
    again = await post(client, reuse=True)
    # Succeeded in the 202 itself: nothing ran, nothing is queued.
    assert again["status"] == "succeeded", again
    assert again["id"] != earlier["id"]
    assert again["result"]["sha256"] == earlier["result"]["sha256"]
    assert again["input"]["filename"] == "again.txt"  # the new job's own input
    assert await attempts_of(client, again["id"]) == []
    body = (await client.get(f"/v1/jobs/{again['id']}/result")).content
    assert hashlib.sha256(body).hexdigest() == earlier["result"]["sha256"]
    # The earlier job's delete removes its own result, not the copy.
    assert (await client.delete(f"/v1/jobs/{earlier['id']}")).status_code == 204
    again_body = (await client.get(f"/v1/jobs/{again['id']}/result")).content
    assert again_body == body


async def test_without_the_flag_or_with_other_params_the_job_runs(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    await succeeded_once(client, run_until_idle)
    plain = await post(client, reuse=False)
    other = await post(client, reuse=True, params=json.dumps({**PARAMS, "level": 1}))
    other_processor = await submit(client, CONTENT, "checksum", params={})
    assert plain["status"] == other["status"] == "queued"
    await run_until_idle()
    for job_id in (plain["id"], other["id"], other_processor.json()["id"]):
        await wait_for_status(client, job_id, "succeeded")
        assert len(await attempts_of(client, job_id)) == 1


async def test_params_are_compared_as_validated(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    await succeeded_once(client, run_until_idle)
    # The same params, written otherwise (key order, spacing): the same request.
    again = await post(client, reuse=True, params='{ "level": 6, "format": "gzip" }')
    assert again["status"] == "succeeded"


async def test_a_gone_result_is_not_reused(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    earlier = await succeeded_once(client, run_until_idle)
    assert await app.state.services.jobs.expire(earlier["id"])
    again = await post(client, reuse=True)
    assert again["status"] == "queued"
    await run_until_idle()
    await wait_for_status(client, again["id"], "succeeded")


async def test_a_raw_body_and_a_tus_upload_reuse_too(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    earlier = await succeeded_once(client, run_until_idle)
    query = {"processor": "compress", "params": json.dumps(PARAMS), "reuse": "true"}
    raw = await client.post(
        "/v1/jobs", params=query, content=CONTENT, headers={"Content-Type": "text/plain"}
    )
    assert raw.status_code == 202, raw.text
    assert raw.json()["status"] == "succeeded"
    fields = {"params": json.dumps(PARAMS), "reuse": "true"}
    created = await tus.create(client, len(CONTENT), "compress", fields=fields)
    done = await tus.patch(client, created.headers["location"], 0, CONTENT)
    assert done.status_code == 204, done.text
    job = (await client.get(f"/v1/jobs/{tus.job_of(done)}")).json()
    assert job["status"] == "succeeded"
    assert job["result"]["sha256"] == earlier["result"]["sha256"]
    assert await attempts_of(client, job["id"]) == []
