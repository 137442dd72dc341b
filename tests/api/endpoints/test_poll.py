"""GET /v1/jobs/{id}'s fast path: the same JSON as `JobOut`, and its conditional form (ETag,
If-None-Match -> 304), owners' checks first."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.api.schemas import JobOut, job_json
from filejob.auth.links import LinkSigner
from filejob.jobs.model import Job
from filejob.jobs.repository import POLL_COLUMNS
from filejob.jobs.states import CallbackState, JobStatus
from tests.support.auth import SECRET, tenant
from tests.support.jobs import submit
from tests.support.processors import GATES
from tests.support.wait import wait_until_async

Tenant = Callable[[str], Any]

BASE: dict[str, Any] = {
    "id": "Q2hlY2tzdW0tam9iLTAwMQ",
    "status": JobStatus.SUCCEEDED,
    "processor": "checksum",
    "params": {},
    "progress": 1.0,
    "attempts": 1,
    "max_attempts": 3,
    "timeout_seconds": 600.0,
    "next_attempt_at": None,
    "created_at": datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    "updated_at": datetime(2025, 1, 2, 3, 4, 7, tzinfo=UTC),
    "started_at": datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC),
    "finished_at": datetime(2025, 1, 2, 3, 4, 7, tzinfo=UTC),
    "delete_after_download": False,
    "error_code": None,
    "error_message": None,
    "input_filename": "in.bin",
    "input_content_type": "application/octet-stream",
    "input_size": 3,
    "input_sha256": "a" * 64,
    "result_key": "results/x",
    "result_filename": "out.json",
    "result_content_type": "application/json",
    "result_size": 42,
    "result_sha256": "b" * 64,
    "callback_url": None,
    "callback_state": None,
    "callback_attempts": 0,
    "callback_last_result": None,
    "callback_delivered_at": None,
    "input_key": "inputs/x",
    "source_url": None,
    "fetched_bytes": None,
    "source_size": None,
}

VARIANTS: dict[str, dict[str, Any]] = {
    "succeeded": {},
    "queued": {"status": JobStatus.QUEUED, "progress": 0.0, "attempts": 0, "result_key": None},
    "running, odd progress": {"status": JobStatus.RUNNING, "progress": 1 / 3, "result_key": None},
    "integer floats": {"status": JobStatus.RUNNING, "progress": 0, "timeout_seconds": 30},
    "failed": {"status": JobStatus.FAILED, "error_code": "boom", "error_message": None},
    "retrying": {
        "status": JobStatus.QUEUED,
        "next_attempt_at": datetime(2025, 1, 2, 3, 5, tzinfo=UTC),
        "error_code": "flaky",
        "error_message": "once more",
    },
    "odd params": {"params": {"é": "ü ✓", "big": 10**30, "nan": float("nan"), "n": [1.5, None]}},
    "result fields missing": {"result_filename": None, "result_size": None, "result_sha256": None},
    "callback": {
        "callback_url": "https://example.com/hook",
        "callback_state": CallbackState.DELIVERED,
        "callback_attempts": 2,
        "callback_last_result": "200",
        "callback_delivered_at": datetime(2025, 1, 2, 3, 4, 8, tzinfo=UTC),
    },
    "callback pending": {"callback_url": "https://example.com/hook", "callback_attempts": None},
    "import, fetching": {
        "status": JobStatus.RUNNING,
        "result_key": None,
        "input_key": None,
        "source_url": "https://example.com/in.bin",
        "fetched_bytes": 1024,
        "source_size": 4096,
    },
    "import, queued": {
        "status": JobStatus.QUEUED,
        "result_key": None,
        "input_key": None,
        "source_url": "https://example.com/in.bin",
    },
    "import, fetched": {"source_url": "https://example.com/in.bin", "fetched_bytes": 3},
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET}


@pytest.fixture
async def tenants(app: FastAPI) -> AsyncIterator[Tenant]:
    clients: list[httpx.AsyncClient] = []

    async def make(name: str) -> httpx.AsyncClient:
        clients.append(await tenant(app, name))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def gate() -> Any:
    event = threading.Event()
    GATES["poll"] = event
    yield event
    event.set()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("signer", [None, LinkSigner([b"k" * 32], 3600, 86400)])
def test_job_json_is_job_outs_json_byte_for_byte(variant: str, signer: LinkSigner | None) -> None:
    values = {**BASE, **VARIANTS[variant]}
    assert set(values) == set(POLL_COLUMNS)
    expected = JobOut.of(Job(**values), signer).model_dump_json().encode()
    assert job_json(values, signer) == expected


async def test_the_poll_answers_job_outs_json(
    app: FastAPI, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    alice = await tenants("alice")
    job_id = (await submit(alice, b"abc", params={})).json()["id"]
    await run_until_idle()
    response = await alice.get(f"/v1/jobs/{job_id}")
    services = app.state.services
    job = await services.jobs.get(job_id, alice.key.id)
    assert response.content == JobOut.of(job, services.links).model_dump_json().encode()
    assert response.headers["content-type"] == "application/json"


async def test_conditional_polls(
    tenants: Tenant, run_until_idle: Callable[[], Any], gate: threading.Event
) -> None:
    alice = await tenants("alice")
    job_id = (await submit(alice, b"x", "slow", params={"steps": 1, "gate": "poll"})).json()["id"]
    url = f"/v1/jobs/{job_id}"

    async def held() -> bool:  # at its gate, its progress saved: it stays so until set
        job = (await alice.get(url)).json()
        return bool(job["status"] == "running" and job["progress"] == 1.0)

    await wait_until_async(held, message="the job did not reach its gate")
    for _ in range(3):  # a pass that saw the job move (queued -> running) is run again
        etag = (await alice.get(url)).headers["etag"]
        answers = [
            await alice.get(url, headers={"If-None-Match": header})
            for header in (etag, f"W/{etag}", f'"other", {etag}', "*")
        ]
        if all(a.headers["etag"] == etag for a in answers):
            break
    for same in answers:
        assert same.status_code == 304 and same.content == b""
        assert same.headers["etag"] == etag and same.headers["cache-control"] == "no-cache"
        assert same.headers["retry-after"] in ("1", "2")
    other = await alice.get(url, headers={"If-None-Match": '"not-this-one"'})
    assert other.status_code == 200 and other.headers["etag"] == etag
    gate.set()
    await run_until_idle()
    changed = await alice.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["status"] == "succeeded"
    assert changed.headers["etag"] != etag and "retry-after" not in changed.headers
    final = await alice.get(url, headers={"If-None-Match": changed.headers["etag"]})
    assert final.status_code == 304


async def test_a_matching_tag_does_not_pass_the_owner_check(
    app: FastAPI, tenants: Tenant, run_until_idle: Callable[[], Any]
) -> None:
    alice, bob = await tenants("alice"), await tenants("bob")
    job_id = (await submit(alice, b"abc")).json()["id"]
    await run_until_idle()
    etag = (await alice.get(f"/v1/jobs/{job_id}")).headers["etag"]
    for header in (etag, "*"):
        foreign = await bob.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": header})
        assert foreign.status_code == 404 and foreign.json()["code"] == "job_not_found"
        assert "etag" not in foreign.headers
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as anonymous:
        unauthenticated = await anonymous.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert unauthenticated.status_code == 401
