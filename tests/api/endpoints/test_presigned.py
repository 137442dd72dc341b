"""FILEJOB_S3_PRESIGNED_DOWNLOADS: results come straight from the object store, with the
headers the server's own download would send (those S3 can be told to send)."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from filejob.app import create_app
from filejob.config import Settings
from tests.support.jobs import submit, wait_for_status
from tests.support.processors import test_registry

TTL = 123  # FILEJOB_S3_PRESIGN_TTL in these tests


@pytest.fixture
def profile() -> str:
    return "distributed"  # presigning is an S3 ability


def public_endpoint(internal: str) -> str:
    """The same SeaweedFS under another host name, as clients outside would reach it."""
    return internal.replace("://127.0.0.1:", "://localhost:")


@pytest.fixture
def settings_overrides(seaweedfs: str) -> dict[str, Any]:
    return {
        "s3_presigned_downloads": True,
        "s3_public_endpoint": public_endpoint(seaweedfs),
        "s3_presign_ttl": TTL,
    }


async def finished(
    client: httpx.AsyncClient, run_until_idle: Any, *args: Any, **kwargs: Any
) -> str:
    job_id = str((await submit(client, *args, **kwargs)).json()["id"])
    await run_until_idle()
    await wait_for_status(client, job_id, "succeeded")
    return job_id


async def test_a_download_redirects_to_the_store(
    client: httpx.AsyncClient, run_until_idle: Any, settings: Settings
) -> None:
    job_id = await finished(
        client, run_until_idle, b"x" * 100_000, "slow", params={"steps": 2}, filename="résumé 1.txt"
    )
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    response = await client.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 307
    location = response.headers["location"]
    assert "X-Amz-Signature=" in location and response.headers["cache-control"] == "no-store"
    # Signed for the host clients reach, valid for FILEJOB_S3_PRESIGN_TTL.
    assert location.startswith(public_endpoint(settings.s3_endpoint) + "/")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == [str(TTL)]
    streamed = await client.head(f"/v1/jobs/{job_id}/result")  # HEAD: the server's own
    async with httpx.AsyncClient(timeout=30) as outside:  # a real request to SeaweedFS
        direct = await outside.get(location)
        part = await outside.get(location, headers={"Range": "bytes=10-19"})
    assert direct.status_code == 200
    assert hashlib.sha256(direct.content).hexdigest() == job["result"]["sha256"]
    # Saved under the result's name (`curl -OJ`, browsers), typed as the result.
    assert direct.headers["content-disposition"] == streamed.headers["content-disposition"]
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt.out" in direct.headers["content-disposition"]
    assert direct.headers["content-type"] == streamed.headers["content-type"]
    assert direct.headers["content-type"] == "application/octet-stream"
    assert direct.headers["cache-control"] == streamed.headers["cache-control"]
    assert part.status_code == 206 and part.content == direct.content[10:20]
    assert part.headers["content-disposition"] == streamed.headers["content-disposition"]
    # Signed result links and HEAD are answered by the server itself (HEAD is signed apart).
    assert (await client.get(job["result"]["url"])).status_code == 307
    assert streamed.status_code == 200
    assert streamed.headers["content-length"] == str(len(direct.content))


@pytest.mark.parametrize(
    ("processor", "content_type", "disposition"),
    [
        ("checksum", "application/json", "inline"),  # shown by a browser: inline when asked
        ("compress", "application/zstd", "attachment"),  # never inline, as when streamed
    ],
)
async def test_an_inline_download_is_inline_only_where_streaming_would_be(
    client: httpx.AsyncClient,
    run_until_idle: Any,
    processor: str,
    content_type: str,
    disposition: str,
) -> None:
    job_id = await finished(client, run_until_idle, b"some text", processor, filename="notes.txt")
    url = f"/v1/jobs/{job_id}/result?disposition=inline"
    streamed = await client.head(url)
    location = (await client.get(url)).headers["location"]
    async with httpx.AsyncClient(timeout=30) as outside:
        direct = await outside.get(location)
    assert direct.status_code == 200
    assert direct.headers["content-type"] == streamed.headers["content-type"] == content_type
    assert direct.headers["content-disposition"] == streamed.headers["content-disposition"]
    assert direct.headers["content-disposition"].startswith(f"{disposition}; ")


async def test_without_a_public_endpoint_links_name_the_internal_one(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any, settings: Settings
) -> None:
    job_id = await finished(client, run_until_idle, b"inside")
    internal = settings.model_copy(update={"s3_public_endpoint": "", "s3_presign_ttl": 300})
    other = create_app(internal, registry=test_registry())  # a second API server
    async with (
        other.router.lifespan_context(other),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://filejob.test"
        ) as second,
    ):
        location = (await second.get(f"/v1/jobs/{job_id}/result")).headers["location"]
    assert location.startswith(settings.s3_endpoint + "/")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["300"]
    async with httpx.AsyncClient(timeout=30) as outside:
        assert (await outside.get(location)).status_code == 200


async def test_delete_after_download_is_still_streamed(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job_id = (await submit(client, b"once", delete_after_download=True)).json()["id"]
    await run_until_idle()
    await wait_for_status(client, job_id, "succeeded")
    response = await client.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 200  # only a streamed body tells the download completed
    await wait_for_status(client, job_id, "expired")


def test_presigning_needs_s3_storage(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="needs an s3://"):
        Settings(data_dir=tmp_path, s3_presigned_downloads=True)
