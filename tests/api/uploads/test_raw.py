"""Raw bodies: `POST /v1/jobs?processor=...` with the file as the whole body. The same answers
and guarantees as a multipart upload: a 202 means stored and committed, and every refusal
(limits before and while reading, timeouts, a full disk, validation, sniffing) leaves nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.api.uploads.pipeline import PipelinedUpload
from tests.api.uploads.raw_bodies import JOBS, NothingKept, nothing_kept, post_raw
from tests.support.jobs import wait_for_status
from tests.support.problems import assert_problem
from tests.support.settings import PROFILES
from tests.support.storage import blob_bytes, job_rows

LIMIT = 256 * 1024  # FILEJOB_MAX_UPLOAD_BYTES here
CHUNK = 64 * 1024


__all__ = ["nothing_kept"]  # a fixture, used by name


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_bytes": LIMIT, "body_timeout": 0.5, "body_deadline": 2.0}


class CountingBody:
    """`chunks` random chunks, counting how many were pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks, self.pulled = chunks, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield os.urandom(CHUNK)


async def test_a_raw_body_becomes_a_job_stored_and_committed(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    content = os.urandom(LIMIT - 1)  # past the in-memory spool: the adopted path
    response = await post_raw(
        client,
        content,
        {"max_attempts": "2", "delete_after_download": "true", "timeout_seconds": "30"},
        {"content-type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["processor"], job["max_attempts"]) == ("queued", "checksum", 2)
    assert job["delete_after_download"] is True and job["timeout_seconds"] == 30.0
    assert job["input"] == {
        "filename": "upload",  # no name given
        "content_type": "application/octet-stream",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    # Before the 202 the row is committed and the bytes are stored under the job's id.
    assert await job_rows(app) == 1
    assert await blob_bytes(app, f"inputs/{job['id']}") == content
    await run_until_idle()
    done = await wait_for_status(client, job["id"], "succeeded")
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert json.loads(result.content)["sha256"] == done["input"]["sha256"]


@pytest.mark.parametrize(
    ("query", "disposition", "expected"),
    [
        pytest.param({"filename": "q.csv"}, 'attachment; filename="h.csv"', "q.csv", id="query"),
        pytest.param({}, 'attachment; filename="rates.csv"', "rates.csv", id="plain"),
        pytest.param(
            {},
            "attachment; filename=\"EUR rates.csv\"; filename*=UTF-8''%E2%82%AC%20rates.csv",
            "€ rates.csv",
            id="extended-wins",
        ),
        pytest.param({}, 'attachment; filename="../../etc/x.csv"', "x.csv", id="sanitised"),
        pytest.param({"filename": "a\x00/..\\b\u202e.csv"}, None, "b.csv", id="query-sanitised"),
        pytest.param({}, "attachment; filename*=bogus''%FF", "upload", id="undecodable"),
    ],
)
async def test_the_name_comes_from_the_query_or_content_disposition(
    client: httpx.AsyncClient, query: dict[str, str], disposition: str | None, expected: str
) -> None:
    headers = {"content-type": "text/csv"}
    if disposition:
        headers["content-disposition"] = disposition
    response = await post_raw(client, b"a,b\n1,2\n", query, headers)
    assert response.status_code == 202, response.text
    assert response.json()["input"]["filename"] == expected
    assert response.json()["input"]["content_type"] == "text/csv"


@pytest.mark.parametrize(
    ("content_type", "content", "judged"),
    [
        pytest.param(None, b"plain words\n", "text/plain", id="untyped-text"),
        # curl --data-binary's own default: no hint, the bytes decide.
        pytest.param("application/x-www-form-urlencoded", b"a,b\n", "text/plain", id="curl"),
        pytest.param("image/png", b"MZ\x90\x00" + bytes(64), "application/vnd.microsoft."
                     "portable-executable", id="lying-type"),
        pytest.param("application/json; charset=utf-8", b'{"a": 1}', "application/json",
                     id="json"),
    ],
)  # fmt: skip
async def test_the_type_is_judged_from_the_bytes_with_the_header_as_a_hint(
    client: httpx.AsyncClient, content_type: str | None, content: bytes, judged: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await post_raw(client, content, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["input"]["content_type"] == judged


@pytest.mark.parametrize(
    ("query", "content", "status", "code"),
    [
        pytest.param({"processor": "nope"}, b"x", 422, "unknown_processor", id="processor"),
        pytest.param({"params": "[1]"}, b"x", 422, "invalid_params", id="params"),
        pytest.param({}, b"", 422, "empty_file", id="empty"),
        pytest.param(
            {"processor": "thumbnail"},
            b"MZ\x90\x00" + os.urandom(4096),
            415,
            "unsupported_media_type",
            id="sniffed",
        ),
        pytest.param(
            {"callback_url": "http://127.0.0.1/hook"}, b"x", 422, "callback_url_forbidden",
            id="callback",
        ),
    ],
)  # fmt: skip
async def test_refusals_are_the_multipart_ones_and_keep_nothing(
    nothing_kept: NothingKept,
    app: FastAPI,
    client: httpx.AsyncClient,
    query: dict[str, str],
    content: bytes,
    status: int,
    code: str,
) -> None:
    response = await post_raw(client, content, query)
    assert_problem(response, status, code)
    await nothing_kept()


async def test_a_bad_field_is_named_as_a_query_parameter(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await post_raw(client, b"x", {"max_attempts": "0", "timeout_seconds": "soon"})
    problem = assert_problem(response, 422, "validation_error")
    assert {tuple(error["loc"]) for error in problem["errors"]} == {
        ("query", "max_attempts"),
        ("query", "timeout_seconds"),
    }
    await nothing_kept()


async def test_content_length_over_the_limit_is_413_before_reading(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = CountingBody(16)
    response = await post_raw(client, body, headers={"content-length": str(16 * CHUNK)})
    assert assert_problem(response, 413, "payload_too_large")["limit"] == LIMIT
    assert body.pulled == 0  # refused from the header
    await nothing_kept()


async def test_a_chunked_body_growing_past_the_limit_is_413_while_reading(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = CountingBody(16)  # no Content-Length: sent chunked
    response = await post_raw(client, body)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert body.pulled <= LIMIT // CHUNK + 1 < 16  # stopped just past the limit
    await nothing_kept()


INLINE = PipelinedUpload.INLINE_HASH_BYTES


@pytest.mark.parametrize("size", [1, INLINE, INLINE + 1, LIMIT])
async def test_the_digest_is_the_whole_bodys_up_to_the_limit(
    client: httpx.AsyncClient, size: int
) -> None:
    content = os.urandom(size)
    response = await post_raw(client, content)
    assert response.status_code == 202, response.text
    stored = response.json()["input"]
    assert (stored["size"], stored["sha256"]) == (size, hashlib.sha256(content).hexdigest())


async def test_a_body_shorter_than_its_content_length_is_400(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def short() -> AsyncIterator[bytes]:
        yield b"only this"

    response = await post_raw(client, short(), headers={"content-length": "1000"})
    assert_problem(response, 400, "malformed_request")
    await nothing_kept()


async def test_a_stalled_body_is_408(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    stalled = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(4096)
        stalled.set()
        await asyncio.sleep(5)  # longer than body_timeout (0.5 s)
        yield b"late"

    response = await post_raw(client, body())
    assert stalled.is_set()
    assert_problem(response, 408, "request_timeout")
    await nothing_kept()


@pytest.mark.parametrize("settings_overrides", [{"min_free_bytes": 2**62}])
async def test_a_full_disk_is_507_before_reading(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = CountingBody(2)
    response = await post_raw(client, body)
    assert_problem(response, 507, "insufficient_storage")
    assert body.pulled == 0
    await nothing_kept()


async def test_a_coded_body_is_415(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await post_raw(client, b"\x1f\x8b\x08", headers={"content-encoding": "gzip"})
    assert_problem(response, 415, "unsupported_media_type")
    await nothing_kept()


async def test_a_body_that_is_no_form_and_has_no_processor_is_still_415(
    nothing_kept: NothingKept, app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.post(JOBS, content=b"{}", headers={"content-type": "application/json"})
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "?processor=" in problem["detail"]
    await nothing_kept()


async def test_a_form_ignores_the_query(client: httpx.AsyncClient) -> None:
    response = await client.post(
        JOBS,
        params={"processor": "nope", "max_attempts": "1"},
        data={"processor": "checksum"},
        files={"file": ("f.bin", b"form bytes")},
    )
    assert response.status_code == 202, response.text
    assert response.json()["input"]["filename"] == "f.bin"
    assert response.json()["max_attempts"] == 3


@pytest.mark.parametrize("profile", ["embedded"])
async def test_the_document_offers_the_raw_body_after_the_form(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][JOBS]["post"]
    content = operation["requestBody"]["content"]
    assert list(content) == ["multipart/form-data", "application/octet-stream", "application/json"]
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}
    form = spec["components"]["schemas"]["Body_submit_job"]["properties"]
    assert form["sha256"]["pattern"] == "^[0-9a-fA-F]{64}$"
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"idempotency-key", "repr-digest"} <= headers
    assert "409" in operation["responses"] and "507" in operation["responses"]
