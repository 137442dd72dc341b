"""Upload size limits: refused with 413 before or while reading, leaving nothing behind; and
GET /v1/limits, which tells a caller its limits (its key's own, or the server's defaults)
and its usage before it uploads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit
from tests.support.storage import assert_clean, job_rows


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_bytes": 2 * 1024 * 1024, "spool_memory_bytes": 64 * 1024}


async def test_too_large_by_content_length_is_413_before_reading(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    response = await submit(client, os.urandom(3 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_too_large_without_content_length_is_413_while_streaming(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    boundary = "b0undary"
    sent = 0

    async def body() -> Any:
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield head
        for _ in range(64):  # 4 MiB in 64 KiB chunks, no Content-Length
            sent += 1
            yield os.urandom(64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/v1/jobs",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_file_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await submit(client, os.urandom(2 * 1024 * 1024))
    assert response.status_code == 202


# -- GET /v1/limits -------------------------------------------------------------------------


async def test_the_anonymous_caller_has_the_upload_limit_only(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    before = (await client.get("/v1/limits")).json()
    assert before == {
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_active_jobs": None,
        "max_storage_bytes": None,
        "rate_limit_per_minute": None,
        "active_jobs": 0,
        "storage_used_bytes": 0,
    }
    await submit(client, b"a" * 1000)
    await run_until_idle()
    after = (await client.get("/v1/limits")).json()
    # The input and the checksum's JSON result: what the storage quota counts.
    assert after["active_jobs"] == 0 and after["storage_used_bytes"] > 1000


async def test_a_key_sees_its_own_limits_else_the_servers_defaults(
    app: Any, client: httpx.AsyncClient, settings: Any
) -> None:
    from tests.support.auth import tenant

    own = {"max_active_jobs": 3, "max_storage_bytes": 5000, "rate_limit": 0}  # 0: unlimited
    async with await tenant(app, "own", **own) as limited, await tenant(app, "dflt") as default:
        job = (await submit(limited, b"x" * 100, "slow", params={"steps": 10_000})).json()
        mine = (await limited.get("/v1/limits")).json()
        theirs = (await default.get("/v1/limits")).json()
        assert (await limited.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 200
    assert mine["max_active_jobs"] == 3 and mine["max_storage_bytes"] == 5000
    assert mine["rate_limit_per_minute"] is None
    assert mine["active_jobs"] == 1 and mine["storage_used_bytes"] == 100
    assert theirs == {
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_active_jobs": settings.max_active_jobs,
        "max_storage_bytes": settings.max_storage_bytes,
        "rate_limit_per_minute": settings.rate_limit,
        "active_jobs": 0,  # another key's jobs are not counted
        "storage_used_bytes": 0,
    }


async def test_limits_are_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/limits"]["get"]
    assert operation["operationId"].startswith("get_limits")  # the function's name
    schema = spec["components"]["schemas"]["LimitsOut"]
    assert set(schema["required"]) >= {"max_upload_bytes", "active_jobs", "storage_used_bytes"}
