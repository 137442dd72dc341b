"""A key's storage quota counts its tus uploads in progress on every path: a job posted while
an upload is under way, and the bytes of an upload whose length is deferred."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.uploads.tus import tus
from tests.support.auth import SECRET, tenant
from tests.support.jobs import submit


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET, "max_upload_bytes": 100_000}


@pytest.fixture
async def alice(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    client = await tenant(app, "alice", max_storage_bytes=1000)
    yield client
    await client.aclose()


async def test_a_posted_job_counts_the_uploads_in_progress(alice: httpx.AsyncClient) -> None:
    created = await tus.create(alice, 900)
    assert created.status_code == 201
    refused = await submit(alice, b"x" * 500)
    assert refused.status_code == 413, refused.text
    assert refused.json()["code"] == "quota_exceeded"
    assert refused.json()["used"] == 900
    # The upload the quota was kept for still completes.
    url = created.headers["location"]
    done = await tus.patch(alice, url, 0, b"u" * 900)
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == "900"


async def test_deferred_bytes_cannot_pass_the_quota(alice: httpx.AsyncClient) -> None:
    url = (await tus.create(alice, None)).headers["location"]
    assert (await tus.patch(alice, url, 0, b"a" * 600)).status_code == 204
    # A known Content-Length past the quota is refused before a byte is read.
    over = await tus.patch(alice, url, 600, b"b" * 500)
    assert over.status_code == 413 and over.json()["code"] == "quota_exceeded"

    # A body of unknown length is refused where it passes the quota.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"c" * 100

    streamed = await tus.patch(alice, url, 600, chunks())
    assert streamed.status_code == 413 and streamed.json()["code"] == "quota_exceeded"
    assert (await tus.head(alice, url)).headers["upload-offset"] == "600"
    # What fits still goes in.
    assert (await tus.patch(alice, url, 600, b"d" * 400)).status_code == 204


async def test_an_upload_with_the_wrong_digest_goes(alice: httpx.AsyncClient) -> None:
    """Its 422 comes with the last byte, and no retry could change it: the upload is removed
    (HEAD: 404), and its bytes no longer count against the quota."""
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    created = await tus.create(alice, 900, headers={"Repr-Digest": f"sha-256=:{wrong}:"})
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    refused = await tus.patch(alice, url, 0, b"u" * 900)
    assert refused.status_code == 422 and refused.json()["code"] == "digest_mismatch"
    assert (await tus.head(alice, url)).status_code == 404
    assert (await tus.patch(alice, url, 0, b"u" * 900)).status_code == 404
    assert (await tus.create(alice, 900)).status_code == 201
