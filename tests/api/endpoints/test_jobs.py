"""GET /v1/jobs/{id}, GET /v1/jobs (keyset pages), DELETE /v1/jobs/{id}."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit, wait_for_status
from tests.support.processors import GATES
from tests.support.storage import stored
from tests.support.wait import wait_until_async

JOB_FIELDS = {
    "id",
    "status",
    "processor",
    "params",
    "progress",
    "phase",
    "source",
    "attempts",
    "callback",
    "max_attempts",
    "timeout_seconds",
    "next_attempt_at",
    "created_at",
    "started_at",
    "finished_at",
    "delete_after_download",
    "error",
    "input",
    "result",
}


@pytest.fixture
def gate() -> Any:
    event = threading.Event()
    GATES["t"] = event
    yield event
    event.set()


async def test_job_json_shape_and_timestamps(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job = (await submit(client, b"abc")).json()
    await run_until_idle()
    response = await client.get(f"/v1/jobs/{job['id']}")
    body = response.json()
    assert set(body) == JOB_FIELDS
    assert body["status"] == "succeeded"
    for field in ("created_at", "started_at", "finished_at"):
        assert body[field].endswith("Z") or body[field].endswith("+00:00")
        datetime.fromisoformat(body[field])
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    assert set(body["result"]) == {
        "filename",
        "content_type",
        "size",
        "sha256",
        "url",
        "url_expires_at",
    }
    assert "retry-after" not in response.headers


async def test_etag_and_304_and_retry_after(
    client: httpx.AsyncClient, run_until_idle: Any, gate: threading.Event
) -> None:
    job = (await submit(client, b"x", "slow", params={"steps": 1, "gate": "t"})).json()
    running = await client.get(f"/v1/jobs/{job['id']}")
    assert running.headers["retry-after"] in ("1", "2")
    etag = running.headers["etag"]
    again = await client.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    if again.status_code == 200:  # it moved from queued to running in between
        etag = again.headers["etag"]
        again = await client.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    gate.set()
    await run_until_idle()
    changed = await client.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["status"] == "succeeded"
    assert changed.headers["etag"] != etag


async def test_progress_is_persisted_while_running(
    client: httpx.AsyncClient, run_until_idle: Any, gate: threading.Event
) -> None:
    job = (
        await submit(
            client, b"x" * 100, "slow", params={"steps": 4, "step_seconds": 0.02, "gate": "t"}
        )
    ).json()
    seen: list[float] = []

    async def all_steps_done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/jobs/{job['id']}")).json()
        seen.append(body["progress"])
        return body if body["progress"] >= 1.0 else None

    body = await wait_until_async(all_steps_done, timeout=30)
    assert body["status"] == "running"  # held at the gate with all steps done
    assert seen == sorted(seen)
    gate.set()
    await run_until_idle()


async def test_unknown_job_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "job_not_found"


# -- listing ------------------------------------------------------------------------------


async def pages(client: httpx.AsyncClient, limit: int) -> AsyncIterator[list[str]]:
    """Job ids page by page, following `next_cursor` to the end."""
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/jobs", params=params)).json()
        yield [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return


async def test_list_newest_first_with_cursor(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    ids = [(await submit(client, f"{n}".encode())).json()["id"] for n in range(7)]
    await run_until_idle()
    seen = [job_id async for page in pages(client, 3) for job_id in page]
    assert seen == list(reversed(ids))


async def test_list_filters(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    a = (await submit(client, b"a")).json()["id"]
    b = (await submit(client, b"b", "compress")).json()["id"]
    c = (
        await submit(client, b"c", "slow", params={"fail": True, "steps": 1, "step_seconds": 0})
    ).json()["id"]
    await run_until_idle()
    by_processor = (await client.get("/v1/jobs", params={"processor": "compress"})).json()
    assert [j["id"] for j in by_processor["items"]] == [b]
    failed = (await client.get("/v1/jobs", params={"status": "failed"})).json()
    assert [j["id"] for j in failed["items"]] == [c]
    both = (await client.get("/v1/jobs", params={"status": "succeeded"})).json()
    assert [j["id"] for j in both["items"]] == [b, a]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"status": "bogus"}, {"cursor": "garbage"}],
)
async def test_list_rejects_bad_query(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.get("/v1/jobs", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_list_default_limit_is_50(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    for n in range(55):
        await submit(client, f"{n}".encode())
    await run_until_idle()
    page = (await client.get("/v1/jobs")).json()
    assert len(page["items"]) == 50 and page["next_cursor"]


async def test_pagination_stays_correct_under_concurrent_inserts(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    before = [(await submit(client, f"old{n}".encode())).json()["id"] for n in range(20)]
    seen: list[str] = []
    async for page in pages(client, 4):
        seen += page
        # Another client keeps adding jobs while we page through.
        await submit(client, os.urandom(16))
    await run_until_idle()
    # Every job that existed when paging began shows up exactly once, in order; no duplicates.
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in before] == list(reversed(before))


# -- DELETE -------------------------------------------------------------------------------


async def test_delete_queued_job_cancels_it(
    client: httpx.AsyncClient, run_until_idle: Any, app: Any, gate: threading.Event
) -> None:
    # Two workers busy at the gate keep the third job queued.
    busy = [
        (await submit(client, b"x", "slow", params={"steps": 1, "gate": "t"})).json()["id"]
        for _ in range(2)
    ]
    for job_id in busy:
        await wait_for_status(client, job_id, "running")
    queued = (await submit(client, b"y")).json()["id"]
    assert (await client.get(f"/v1/jobs/{queued}")).json()["status"] == "queued"
    assert (await client.delete(f"/v1/jobs/{queued}")).status_code == 204
    gate.set()
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{queued}")).json()
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["result"] is None


async def test_delete_running_job_stops_it_without_partial_files(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job = (
        await submit(
            client, os.urandom(1 << 20), "slow", params={"steps": 10_000, "step_seconds": 0.01}
        )
    ).json()
    await wait_for_status(client, job["id"], "running")
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    # DELETE returns once the job has stopped.
    after = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert after["status"] == "cancelled" and after["finished_at"]
    await run_until_idle()
    leftovers = await stored(app)
    assert [k.split("/")[0] for k in leftovers] == ["inputs"]  # no result, no temp file


async def test_delete_finished_job_removes_row_and_files(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job = (await submit(client, b"data")).json()
    await run_until_idle()
    assert len(await stored(app)) == 2
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert await stored(app) == []
    assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 404
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 404


async def test_the_profile_is_the_one_asked_for(app: Any, profile: str) -> None:
    """The parametrised profile really changes where state and files live."""
    from filejob.storage.local import LocalStorage
    from filejob.storage.s3 import S3Storage

    services = app.state.services
    url, storage = services.jobs.db.url, services.jobs.storage
    if profile == "embedded":
        assert url.startswith("sqlite") and isinstance(storage, LocalStorage)
    else:
        assert url.startswith("postgresql+psycopg://") and isinstance(storage, S3Storage)
