"""Concatenation: parts sent as partial uploads (each resumable on its own), joined by a final
upload that becomes the job; the parts must be the caller's, finished, and free."""

from __future__ import annotations

import hashlib
import os

import httpx

from filejob.resumable.service import ResumableUploads
from tests.api.uploads.tus import tus

PARTIAL = {"Upload-Concat": "partial"}


async def _part(client: httpx.AsyncClient, data: bytes, *, finish: bool = True) -> str:
    created = await client.post(
        "/v1/uploads", headers={**tus.TUS, **PARTIAL, "Upload-Length": str(len(data))}
    )
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    if finish:
        done = await tus.patch(client, url, 0, data)
        assert done.status_code == 204 and "link" not in done.headers  # a part has no job
    return str(url)


async def _final(client: httpx.AsyncClient, *urls: str, **headers: str) -> httpx.Response:
    sent = {
        **tus.TUS,
        "Upload-Concat": "final;" + " ".join(urls),
        "Upload-Metadata": tus.metadata(processor="checksum", filename="joined.bin"),
        **headers,
    }
    return await client.post("/v1/uploads", headers=sent)


async def test_parts_joined_by_a_final_upload_make_the_job(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    pieces = [os.urandom(300_000), os.urandom(1), os.urandom(70_000)]
    urls = [await _part(client, piece) for piece in pieces]
    described = await tus.head(client, urls[0])
    assert described.headers["upload-concat"] == "partial"
    # Absolute URLs (as tus-js-client sends them) and paths alike.
    final = await _final(client, f"http://filejob.test{urls[0]}", *urls[1:])
    assert final.status_code == 201, final.text
    content = b"".join(pieces)
    job = (await client.get(f"/v1/jobs/{tus.job_of(final)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert job["input"]["size"] == len(content) and job["input"]["filename"] == "joined.bin"
    head = await tus.head(client, final.headers["location"])
    assert head.headers["upload-concat"] == "final;" + " ".join(urls)
    assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(content))
    assert tus.job_of(head) == job["id"]
    # The parts are used up: gone, files and all.
    assert (await tus.head(client, urls[0])).status_code == 404
    assert list(uploads.files.folder.iterdir()) == []
    refused = await tus.patch(client, final.headers["location"], len(content), b"x")
    assert refused.status_code == 403 and refused.json()["code"] == "upload_is_final"


async def test_a_final_upload_needs_finished_partial_uploads_of_its_own(
    client: httpx.AsyncClient,
) -> None:
    done = await _part(client, b"abc")
    unfinished = await _part(client, b"def", finish=False)
    whole = (await tus.create(client, 3)).headers["location"]
    cases = [
        (await _final(client, done, unfinished), 400, "partial_upload_not_finished"),
        (await _final(client, done, whole), 400, "invalid_concat"),
        (await _final(client, done, "/v1/uploads/nothing-here"), 404, "upload_not_found"),
        (await _final(client, done, done), 400, "invalid_concat"),
        (await _final(client, "/elsewhere/x"), 400, "invalid_concat"),
        (await _final(client, done, **{"Upload-Length": "3"}), 400, "invalid_concat"),
        (
            await _final(client, done, **{"Upload-Metadata": tus.metadata(processor="nope")}),
            422,
            "unknown_processor",
        ),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["code"] == code
    # Nothing was used up: the finished part still makes a final upload.
    assert (await tus.patch(client, unfinished, 0, b"def")).status_code == 204
    final = await _final(client, done, unfinished)
    assert final.status_code == 201, final.text
    job = (await client.get(f"/v1/jobs/{tus.job_of(final)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(b"abcdef").hexdigest()
