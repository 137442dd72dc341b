"""FILEJOB_S3_PRESIGNED_DOWNLOADS: results come straight from the object store."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from service.config import Settings
from tests.support import submit, wait_for_status


@pytest.fixture
def profile() -> str:
    return "distributed"  # presigning is an S3 ability


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"s3_presigned_downloads": True}


async def test_a_download_redirects_to_the_store(client: httpx.AsyncClient, drain: Any) -> None:
    job_id = (await submit(client, b"x" * 100_000, "slow", params={"steps": 2})).json()["id"]
    await drain()
    job = await wait_for_status(client, job_id, "succeeded")
    response = await client.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 307
    location = response.headers["location"]
    assert "X-Amz-Signature=" in location and response.headers["cache-control"] == "no-store"
    async with httpx.AsyncClient(timeout=30) as outside:  # a real request to SeaweedFS
        body = (await outside.get(location)).content
        part = await outside.get(location, headers={"Range": "bytes=10-19"})
    assert hashlib.sha256(body).hexdigest() == job["result"]["sha256"]
    assert part.status_code == 206 and part.content == body[10:20]
    # Signed result links and HEAD are answered by the server itself (HEAD is signed apart).
    assert (await client.get(job["result"]["url"])).status_code == 307
    head = await client.head(f"/v1/jobs/{job_id}/result")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(body))


async def test_delete_after_download_is_still_streamed(
    client: httpx.AsyncClient, drain: Any
) -> None:
    job_id = (await submit(client, b"once", delete_after_download=True)).json()["id"]
    await drain()
    await wait_for_status(client, job_id, "succeeded")
    response = await client.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 200  # only a streamed body tells the download completed
    await wait_for_status(client, job_id, "expired")


def test_presigning_needs_s3_storage(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="needs an s3://"):
        Settings(data_dir=tmp_path, s3_presigned_downloads=True)
