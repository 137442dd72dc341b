"""Uploads belong to the API key that made them: another key's upload answers every verb
exactly as a missing one does; the key's quota counts its uploads in progress; a new upload's
job fields get the very answers `POST /v1/jobs` gives."""

from __future__ import annotations

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
async def keys(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients = {
        "alice": await tenant(app, "alice", max_storage_bytes=1000),
        "bob": await tenant(app, "bob"),
    }
    yield clients
    for client in clients.values():
        await client.aclose()


def _comparable(answer: httpx.Response, upload_id: str) -> tuple[Any, ...]:
    body = answer.text.replace(upload_id, "ID")
    headers = {
        k: v
        for k, v in answer.headers.items()
        if k not in ("content-length", "date", "x-request-id")
    }
    return answer.status_code, body, sorted(headers.items())


async def test_another_keys_upload_answers_like_a_missing_one(
    keys: dict[str, httpx.AsyncClient],
) -> None:
    alice, bob = keys["alice"], keys["bob"]
    url = (await tus.create(alice, 10)).headers["location"]
    upload_id = url.rsplit("/", 1)[1]
    missing_id = "A" * len(upload_id)
    missing = f"/v1/uploads/{missing_id}"
    verbs = [
        lambda target: tus.head(bob, target),
        lambda target: bob.get(target),
        lambda target: tus.patch(bob, target, 0, b"12345"),
        lambda target: bob.delete(target, headers=tus.TUS),
    ]
    for verb in verbs:
        theirs, nobodys = await verb(url), await verb(missing)
        assert theirs.status_code == 404
        assert _comparable(theirs, upload_id) == _comparable(nobodys, missing_id)
    # Alice's upload is untouched and still hers.
    answer = await tus.head(alice, url)
    assert answer.status_code == 200 and answer.headers["upload-offset"] == "0"


async def test_no_key_no_upload(app: FastAPI, client: httpx.AsyncClient) -> None:
    answer = await tus.create(client, 10)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert answer.headers["tus-resumable"] == "1.0.0"


async def test_quota_counts_uploads_in_progress(keys: dict[str, httpx.AsyncClient]) -> None:
    alice = keys["alice"]  # 1000 bytes of storage
    first = await tus.create(alice, 600)
    assert first.status_code == 201
    second = await tus.create(alice, 600)
    assert second.status_code == 413
    assert second.json()["code"] == "quota_exceeded"
    assert second.json()["used"] == 600
    # A multipart job of the same size meets the same limit... once the upload is gone.
    assert (await alice.delete(first.headers["location"], headers=tus.TUS)).status_code == 204
    assert (await tus.create(alice, 600)).status_code == 201
    # A deferred length is counted when it is declared.
    deferred = (await tus.create(alice, None)).headers["location"]
    declared = await tus.patch(alice, deferred, 0, b"abc", {"Upload-Length": "500"})
    assert declared.status_code == 413 and declared.json()["code"] == "quota_exceeded"
    assert (await tus.head(alice, deferred)).headers["upload-offset"] == "0"


@pytest.mark.parametrize(
    ("fields", "length", "status", "code"),
    [
        ({"processor": "no-such"}, 10, 422, "unknown_processor"),
        ({"processor": "compress", "params": '{"level": 99}'}, 10, 422, "invalid_params"),
        ({"processor": "compress", "params": "[1]"}, 10, 422, "invalid_params"),
        ({"processor": "checksum", "max_attempts": "0"}, 10, 422, "validation_error"),
        ({"processor": "checksum", "timeout_seconds": "-1"}, 10, 422, "validation_error"),
        ({"processor": "checksum", "callback_url": "http://127.0.0.1/x"}, 10, 422, ""),
        ({"processor": "checksum"}, 100_001, 413, "payload_too_large"),
        ({"processor": "checksum"}, 0, 422, "empty_file"),
    ],
)
async def test_job_fields_are_refused_as_submit_refuses_them(
    keys: dict[str, httpx.AsyncClient], fields: dict[str, str], length: int, status: int, code: str
) -> None:
    bob = keys["bob"]
    fields = dict(fields)  # the parameter is shared with the other profile's run
    processor = fields.pop("processor")
    refused = await tus.create(bob, length, processor, fields=fields)
    assert refused.status_code == status, refused.text
    posted = await submit(
        bob,
        b"x" * length,
        processor,
        params=fields.get("params"),
        max_attempts=int(fields["max_attempts"]) if "max_attempts" in fields else None,
        timeout_seconds=float(fields["timeout_seconds"]) if "timeout_seconds" in fields else None,
        callback_url=fields.get("callback_url"),
    )
    assert posted.status_code == status
    assert refused.json()["code"] == posted.json()["code"]
    if code:
        assert refused.json()["code"] == code
    if code in ("unknown_processor", "invalid_params", ""):  # the very same check
        assert refused.json()["detail"] == posted.json()["detail"]


async def test_another_keys_parts_cannot_be_joined(keys: dict[str, httpx.AsyncClient]) -> None:
    alice, bob = keys["alice"], keys["bob"]
    part = await alice.post(
        "/v1/uploads", headers={**tus.TUS, "Upload-Concat": "partial", "Upload-Length": "3"}
    )
    url = part.headers["location"]
    assert (await tus.patch(alice, url, 0, b"abc")).status_code == 204
    final = await bob.post(
        "/v1/uploads",
        headers={
            **tus.TUS,
            "Upload-Concat": f"final;{url}",
            "Upload-Metadata": tus.metadata(processor="checksum"),
        },
    )
    assert final.status_code == 404 and final.json()["code"] == "upload_not_found"
    # A finished part still counts against its owner's quota (its bytes are kept).
    assert (await tus.create(alice, 998)).status_code == 413
