"""Per-key limits: active jobs (429), stored bytes (413 quota_exceeded), request rate (429)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.auth import KeyClient
from tests.support.jobs import submit, wait_for_status
from tests.support.multipart import CountingBody
from tests.support.processors import GATES
from tests.support.storage import stored


async def test_active_jobs_are_limited_per_key(
    app: Any, key_client: KeyClient, run_until_idle: Callable[[], Any], data_dir: Any
) -> None:
    import threading

    GATES["quota-active"] = gate = threading.Event()
    alice = await key_client("alice", max_active_jobs=2)
    bob = await key_client("bob", max_active_jobs=2)
    params = {"gate": "quota-active", "steps": 1, "step_seconds": 0}
    first = [await submit(alice, b"x", "slow", params=params) for _ in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    before = await stored(app)
    refused = await submit(alice, b"x", "slow", params=params)
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_active_jobs"
    assert int(refused.headers["retry-after"]) > 0
    assert await stored(app) == before  # nothing kept of the refused upload
    assert (await submit(bob, b"x", "slow", params=params)).status_code == 202  # bob's own
    gate.set()
    await run_until_idle()
    for r in first:
        await wait_for_status(alice, r.json()["id"], "succeeded")
    assert (await submit(alice, b"x")).status_code == 202  # room again
    await run_until_idle()


async def test_stored_bytes_are_limited_per_key(
    key_client: KeyClient, run_until_idle: Callable[[], Any]
) -> None:
    alice = await key_client("alice", max_storage_bytes=10_000)
    assert (await submit(alice, b"a" * 6000, "slow", params={"steps": 1})).status_code == 202
    await run_until_idle()  # the `slow` result is a copy: 12 000 bytes in use now
    refused = await submit(alice, b"b" * 10)
    assert refused.status_code == 413
    body = refused.json()
    assert body["code"] == "quota_exceeded"
    assert body["limit"] == 10_000 and body["used"] == 12_000
    # Deleting a finished job gives its bytes back.
    job_id = (await alice.get("/v1/jobs")).json()["items"][0]["id"]
    assert (await alice.delete(f"/v1/jobs/{job_id}")).status_code == 204
    assert (await submit(alice, b"b" * 10)).status_code == 202
    await run_until_idle()


async def test_the_storage_quota_is_checked_from_content_length_before_the_body(
    app: Any, key_client: KeyClient, data_dir: Any
) -> None:
    alice = await key_client("alice", max_storage_bytes=1000)
    body = CountingBody(32)
    response = await alice.post(
        "/v1/jobs",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b", "content-length": "2097152"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "quota_exceeded"
    assert body.pulled <= 1
    assert await stored(app) == []


async def test_the_storage_quota_holds_without_content_length(
    app: Any, key_client: KeyClient, data_dir: Any
) -> None:
    alice = await key_client("alice", max_storage_bytes=1000)
    boundary = b"qb"
    payload = (
        b'--qb\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
        b'--qb\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"z" * 5000 + b"\r\n--qb--\r\n"
    )

    async def chunked() -> Any:  # no Content-Length: the size is known only once stored
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = await alice.post(
        "/v1/jobs",
        content=chunked(),
        headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "quota_exceeded"
    assert await stored(app) == []
    assert (await alice.get("/v1/jobs")).json()["items"] == []


async def test_requests_are_rate_limited_per_key(key_client: KeyClient) -> None:
    alice = await key_client("alice", rate_limit=5)
    bob = await key_client("bob", rate_limit=5)
    statuses = [(await alice.get("/v1/jobs")).status_code for _ in range(5)]
    assert statuses == [200] * 5
    limited = await alice.get("/v1/jobs")
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert (await alice.post("/v1/jobs")).status_code == 429  # uploads count too
    assert (await bob.get("/v1/jobs")).status_code == 200  # bob has his own budget


async def test_server_defaults_apply_to_keys_without_their_own(
    app: FastAPI, key_client: KeyClient
) -> None:
    alice = await key_client("alice")
    caller = await app.state.services.auth.keys.authenticate(
        alice.headers["authorization"].removeprefix("Bearer ")
    )
    settings = app.state.services.settings
    assert caller.max_active_jobs == settings.max_active_jobs
    assert caller.max_storage_bytes == settings.max_storage_bytes
    assert caller.rate_limit == settings.rate_limit
    unlimited = await key_client("batch", max_active_jobs=0, rate_limit=0)
    caller = await app.state.services.auth.keys.authenticate(
        unlimited.headers["authorization"].removeprefix("Bearer ")
    )
    assert caller.max_active_jobs is None and caller.rate_limit is None


class TestGlobalLimits:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "required", "secret_key": "g" * 40, "max_filename_length": 32}

    async def test_long_filenames_are_shortened_to_the_limit(
        self, key_client: KeyClient, run_until_idle: Callable[[], Any]
    ) -> None:
        alice = await key_client("alice")
        created = await submit(alice, b"x", filename="n" * 200 + ".txt")
        name = created.json()["input"]["filename"]
        assert name.endswith(".txt") and len(name.encode()) == 32
        await run_until_idle()


async def test_anonymous_callers_have_no_per_key_limits(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    principal = app.state.services.auth.anonymous
    assert principal.owner_id is None
    assert principal.max_active_jobs is None and principal.rate_limit is None


async def test_concurrent_uploads_cannot_overshoot_the_active_jobs_limit(
    key_client: KeyClient, run_until_idle: Callable[[], Any]
) -> None:
    import asyncio
    import threading

    GATES["quota-race"] = gate = threading.Event()
    alice = await key_client("alice", max_active_jobs=1, rate_limit=0)
    params = {"gate": "quota-race", "steps": 1, "step_seconds": 0}
    responses = await asyncio.gather(
        *(submit(alice, b"x" * 1000, "slow", params=params) for _ in range(6))
    )
    assert sorted(r.status_code for r in responses) == [202] + [429] * 5
    gate.set()
    await run_until_idle()
