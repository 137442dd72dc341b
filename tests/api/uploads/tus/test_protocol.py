"""tus 1.0.0 at /v1/uploads, request by request: discovery, creation (with an upload, with a
deferred length), HEAD, PATCH, checksums, termination, and the job a finished upload makes."""

from __future__ import annotations

import base64
import hashlib
import os
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from filejob.resumable.service import ResumableUploads
from tests.api.uploads.tus import tus
from tests.support.jobs import wait_for_status
from tests.support.storage import blob_bytes


async def test_options_tells_what_the_server_supports(client: httpx.AsyncClient, app: Any) -> None:
    answer = await client.options("/v1/uploads")
    assert answer.status_code == 204
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert answer.headers["tus-version"] == "1.0.0"
    assert set(answer.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    }
    assert answer.headers["tus-max-size"] == str(app.state.services.settings.max_upload_bytes)
    assert {"sha1", "sha256"} <= set(answer.headers["tus-checksum-algorithm"].split(","))


async def test_chunks_make_a_job_when_the_last_byte_lands(
    client: httpx.AsyncClient, app: Any, uploads: ResumableUploads
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 5)
    fields = {"filename": "photo.bin", "filetype": "image/x"}
    created = await tus.create(client, len(content), fields=fields)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert url.startswith("/v1/uploads/")
    assert created.headers["upload-offset"] == "0"
    assert created.headers["tus-resumable"] == "1.0.0"
    assert parsedate_to_datetime(created.headers["upload-expires"]).tzinfo is not None
    assert "link" not in created.headers

    first = await tus.patch(client, url, 0, content[:1_000_000])
    assert first.status_code == 204, first.text
    assert first.headers["upload-offset"] == "1000000"
    assert "link" not in first.headers
    described = await tus.head(client, url)
    assert described.status_code == 200
    assert described.headers["upload-offset"] == "1000000"
    assert described.headers["upload-length"] == str(len(content))
    assert described.headers["cache-control"] == "no-store"
    assert described.headers["upload-metadata"] == tus.metadata(
        processor="checksum", filename="photo.bin", filetype="image/x"
    )
    last = await tus.patch(client, url, 1_000_000, content[1_000_000:])
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(content))
    job_id = tus.job_of(last)

    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert job["input"]["filename"] == "photo.bin"
    assert job["input"]["size"] == len(content)
    assert await blob_bytes(app, f"inputs/{job_id}") == content
    # Every later HEAD links the job; the JSON view shows it too.
    again = await tus.head(client, url)
    assert tus.job_of(again) == job_id and again.headers["upload-offset"] == str(len(content))
    view = await client.get(url, headers={"Accept": "application/json"})
    assert view.status_code == 200
    assert view.json()["job_id"] == job_id and view.json()["offset"] == len(content)
    assert set(view.json()) == {"id", "offset", "length", "expires_at", "job_id"}
    # The upload's own file went: the job's input is the only name of those bytes.
    assert list(uploads.files.folder.iterdir()) == []
    done = await wait_for_status(client, job_id, "succeeded")
    assert done["result"] is not None


async def test_the_final_patch_again_answers_as_the_first_did(client: httpx.AsyncClient) -> None:
    """A client whose last answer was lost sends it again: the same job, nothing new."""
    content = b"all of it"
    created = await tus.create(client, len(content))
    url = created.headers["location"]
    first = await tus.patch(client, url, 0, content)
    again = await tus.patch(client, url, len(content), b"")
    assert again.status_code == 204
    assert tus.job_of(again) == tus.job_of(first)
    stale = await tus.patch(client, url, 0, content)
    assert stale.status_code == 409
    assert stale.json()["code"] == "upload_offset_mismatch"


async def test_creation_with_upload(client: httpx.AsyncClient) -> None:
    content = os.urandom(70_000)
    partly = await tus.create(client, len(content), body=content[:50_000])
    assert partly.status_code == 201, partly.text
    assert partly.headers["upload-offset"] == "50000"
    rest = await tus.patch(client, partly.headers["location"], 50_000, content[50_000:])
    assert rest.status_code == 204
    whole = await tus.create(client, len(content), body=content)
    assert whole.status_code == 201
    job = (await client.get(f"/v1/jobs/{tus.job_of(whole)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_deferred_length(client: httpx.AsyncClient) -> None:
    created = await tus.create(client, None)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    first = await tus.patch(client, url, 0, b"abc")
    assert first.status_code == 204
    described = await tus.head(client, url)
    assert described.headers["upload-defer-length"] == "1"
    assert "upload-length" not in described.headers
    last = await tus.patch(client, url, 3, b"def", {"Upload-Length": "6"})
    assert last.status_code == 204, last.text
    job = (await client.get(f"/v1/jobs/{tus.job_of(last)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5", "sha512"])
async def test_checksums_are_checked(client: httpx.AsyncClient, algorithm: str) -> None:
    content = os.urandom(5000)
    url = (await tus.create(client, len(content))).headers["location"]
    good = await tus.patch(client, url, 0, content[:2000], tus.checksum(algorithm, content[:2000]))
    assert good.status_code == 204, good.text
    wrong = await tus.patch(client, url, 2000, content[2000:], tus.checksum(algorithm, b"other"))
    assert wrong.status_code == 460
    assert wrong.json()["code"] == "checksum_mismatch"
    assert wrong.headers["tus-resumable"] == "1.0.0"
    # Nothing of the refused request was kept: the offset is where it was.
    assert (await tus.head(client, url)).headers["upload-offset"] == "2000"
    right = await tus.patch(
        client, url, 2000, content[2000:], tus.checksum(algorithm, content[2000:])
    )
    assert right.status_code == 204
    job = (await client.get(f"/v1/jobs/{tus.job_of(right)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_refusals_name_their_code(client: httpx.AsyncClient) -> None:
    url = (await tus.create(client, 10)).headers["location"]
    cases: list[tuple[httpx.Response, int, str]] = [
        (await client.post("/v1/uploads", headers={"Upload-Length": "1"}), 412, ""),
        (await tus.patch(client, url, 3, b"abc"), 409, "upload_offset_mismatch"),
        (
            await tus.patch(client, url, 0, b"abc", {"Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        ),
        (
            await tus.patch(client, url, 0, b"abc", {"Upload-Checksum": "crc99 AAAA"}),
            400,
            "unsupported_checksum",
        ),
        (await tus.patch(client, url, 0, b"x" * 11), 413, "upload_length_exceeded"),
        (await tus.patch(client, "/v1/uploads/nothing-here", 0, b"abc"), 404, "upload_not_found"),
        (
            await tus.create(client, None, headers={"Upload-Length": "5"}),
            400,
            "invalid_upload_length",
        ),
        (
            await client.post("/v1/uploads", headers={**tus.TUS, "Upload-Length": "5"}),
            422,
            "validation_error",
        ),
        (await tus.patch(client, url, 0, b"abc", {"Upload-Length": "9"}), 400, ""),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, (answer.request.method, answer.text)
        assert answer.headers["tus-resumable"] == "1.0.0"
        assert answer.headers["content-type"] == "application/problem+json"
        if code:
            assert answer.json()["code"] == code
    assert cases[0][0].headers["tus-version"] == "1.0.0"
    assert (await tus.head(client, url)).headers["upload-offset"] == "0"


async def test_termination(client: httpx.AsyncClient, uploads: ResumableUploads) -> None:
    url = (await tus.create(client, 10)).headers["location"]
    assert (await tus.patch(client, url, 0, b"12345")).status_code == 204
    gone = await client.delete(url, headers=tus.TUS)
    assert gone.status_code == 204
    assert gone.headers["tus-resumable"] == "1.0.0"
    assert (await tus.head(client, url)).status_code == 404
    assert (await tus.patch(client, url, 5, b"67890")).status_code == 404
    assert list(uploads.files.folder.iterdir()) == []


async def test_a_job_refused_at_the_end_keeps_the_offset(client: httpx.AsyncClient) -> None:
    """What only the bytes tell (a thumbnail of a file that is no image) is judged when the last
    byte lands: that request fails, nothing of it is kept, and no job is made."""
    content = b"not an image at all" * 100
    url = (await tus.create(client, len(content), "thumbnail")).headers["location"]
    assert (await tus.patch(client, url, 0, content[:1000])).status_code == 204
    refused = await tus.patch(client, url, 1000, content[1000:])
    assert refused.status_code == 415, refused.text
    assert refused.json()["code"] == "unsupported_media_type"
    described = await tus.head(client, url)
    assert described.headers["upload-offset"] == "1000" and "link" not in described.headers
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_repr_digest_is_checked_against_the_whole_upload(client: httpx.AsyncClient) -> None:
    content = os.urandom(10_000)
    wrong = "sha-256=:" + base64.b64encode(hashlib.sha256(b"other").digest()).decode() + ":"
    url = (await tus.create(client, len(content), headers={"Repr-Digest": wrong})).headers[
        "location"
    ]
    refused = await tus.patch(client, url, 0, content)
    assert refused.status_code == 422 and refused.json()["code"] == "digest_mismatch"
    right = "sha-256=:" + base64.b64encode(hashlib.sha256(content).digest()).decode() + ":"
    url = (await tus.create(client, len(content), headers={"Repr-Digest": right})).headers[
        "location"
    ]
    assert (await tus.patch(client, url, 0, content)).status_code == 204
