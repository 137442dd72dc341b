"""Review mends of /v1/uploads: refusals that were 500s (an Upload-Concat URL that is no URL, a
NUL in the file's name, a full disk mid-PATCH), a steady request never interrupted by a newer
one (only a stalled one is), `Tus-Resumable` on every answer under the prefix, HEAD's version
check, 413 before 507, and the lease renewed only when due."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from filejob.resumable import receive
from filejob.resumable.files import ChunkWriter
from filejob.resumable.receive import BATCH_BYTES, BodyReceiver
from filejob.resumable.service import ResumableUploads
from tests.api.uploads.tus import tus
from tests.support.wait import wait_until_async


async def test_an_upload_concat_url_that_is_no_url_is_invalid_concat(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/v1/uploads",
        headers={
            **tus.TUS,
            "Upload-Concat": "final;http://[/v1/uploads/x",
            "Upload-Metadata": tus.metadata(processor="checksum"),
        },
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_concat"


async def test_control_characters_in_the_files_name_and_type_are_dropped(
    client: httpx.AsyncClient,
) -> None:
    """As `POST /v1/jobs` does with a multipart name: the name is cleaned, a declared type
    that is no media type is ignored (PostgreSQL's text refuses NUL: this was a 500)."""
    content = b"hello, world\n"
    fields = {"filename": "a\x00b\x1f.txt", "filetype": "text/plain\x00"}
    created = await tus.create(client, len(content), fields=fields)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert (await tus.head(client, url)).status_code == 200
    last = await tus.patch(client, url, 0, content)
    assert last.status_code == 204, last.text
    job = (await client.get(f"/v1/jobs/{tus.job_of(last)}")).json()
    assert job["input"]["filename"] == "ab.txt"


async def test_a_full_disk_mid_patch_is_507_and_keeps_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = os.urandom(100_000)
    url = (await tus.create(client, len(content))).headers["location"]

    def no_space(self: ChunkWriter, data: bytes | memoryview, position: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(ChunkWriter, "write", no_space)
        full = await tus.patch(client, url, 0, content)
    assert full.status_code == 507, full.text
    assert full.json()["code"] == "insufficient_storage"
    assert full.headers["tus-resumable"] == "1.0.0"
    assert (await tus.head(client, url)).headers["upload-offset"] == "0"
    # The lease was let go: the client's retry goes on at once.
    assert (await tus.patch(client, url, 0, content)).status_code == 204


async def test_a_full_disk_at_creation_is_507(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(upload_id: str) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(uploads.files, "create", no_space)
    answer = await tus.create(client, 10)
    assert answer.status_code == 507, answer.text
    assert answer.json()["code"] == "insufficient_storage"


def _receivers(uploads: ResumableUploads) -> list[BodyReceiver]:
    return [w.receiver for w in uploads.writing.values() if w.receiver is not None]


async def test_a_steady_request_is_not_interrupted_by_a_newer_one(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose bytes keep coming is no stalled one: the newer request is refused (423,
    as on another server) and the first one finishes."""
    monkeypatch.setattr(receive, "STALLED_SECONDS", 3600.0)
    content = os.urandom(200_000)
    url = (await tus.create(client, len(content))).headers["location"]
    first_half_sent, go_on = asyncio.Event(), asyncio.Event()

    async def steady_body() -> AsyncIterator[bytes]:
        yield content[:100_000]
        first_half_sent.set()
        await go_on.wait()
        yield content[100_000:]

    steady = asyncio.create_task(tus.patch(client, url, 0, steady_body()))
    await asyncio.wait_for(first_half_sent.wait(), 30)
    await wait_until_async(lambda: _awaiting_one(uploads), timeout=30)
    newer = await tus.patch(client, url, 0, content)
    assert newer.status_code == 423, newer.text
    assert newer.json()["code"] == "upload_locked"
    go_on.set()
    first = await asyncio.wait_for(steady, 30)
    assert first.status_code == 204, first.text
    job = (await client.get(f"/v1/jobs/{tus.job_of(first)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def _awaiting_one(uploads: ResumableUploads) -> bool:
    """A request of this process holds the upload and waits for its client's next chunk."""
    return any(r._awaiting for r in _receivers(uploads))


async def _stalled_one(uploads: ResumableUploads) -> bool:
    return any(r.waiting for r in _receivers(uploads))


async def test_a_stalled_request_is_still_taken_over(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receive, "STALLED_SECONDS", 0.2)
    content = os.urandom(200_000)
    url = (await tus.create(client, len(content))).headers["location"]

    async def stalled_body() -> AsyncIterator[bytes]:
        yield content[:100_000]
        await asyncio.Event().wait()  # the rest never comes
        yield b""

    stalled = asyncio.create_task(tus.patch(client, url, 0, stalled_body()))
    await wait_until_async(lambda: _stalled_one(uploads), timeout=30)
    newer = await tus.patch(client, url, 0, content)
    assert newer.status_code == 204, newer.text
    interrupted = await asyncio.wait_for(stalled, 30)
    assert interrupted.status_code == 400
    assert interrupted.json()["code"] == "upload_interrupted"


async def test_every_answer_under_the_prefix_carries_tus_resumable(
    client: httpx.AsyncClient,
) -> None:
    url = (await tus.create(client, 10)).headers["location"]
    wrong_method = await client.put(url, headers=tus.TUS, content=b"x")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["tus-resumable"] == "1.0.0"
    for path in ("/v1/uploads/a/b", f"{url}/more"):
        missing = await client.get(path, headers=tus.TUS)
        assert missing.status_code == 404, path
        assert missing.headers["tus-resumable"] == "1.0.0"
        assert missing.json()["code"] == "not_found"
    # The rest of the API is not tus.
    assert "tus-resumable" not in (await client.get("/v1/no-such-thing")).headers


async def test_head_checks_the_version(client: httpx.AsyncClient) -> None:
    url = (await tus.create(client, 10)).headers["location"]
    wrong = await client.head(url, headers={"Tus-Resumable": "0.2.2"})
    assert wrong.status_code == 412
    assert wrong.headers["tus-version"] == "1.0.0"
    assert (await client.head(url)).status_code == 412
    assert (await tus.head(client, url)).status_code == 200


async def test_too_large_is_413_even_when_the_disk_looks_full(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = dataclasses.replace(app.state.upload_policy, free_bytes=lambda: 10**12)
    monkeypatch.setattr(app.state, "upload_policy", policy)
    created = await tus.create(client, 10**30)
    assert created.status_code == 413, created.text
    assert created.json()["code"] == "payload_too_large"
    url = (await tus.create(client, None)).headers["location"]
    declared = await tus.patch(client, url, 0, b"abc", headers={"Upload-Length": str(10**30)})
    assert declared.status_code == 413, declared.text


class _Lease:
    def __init__(self, due: bool) -> None:
        self.due, self.renewals = due, 0

    async def keep(self) -> None:
        self.renewals += 1


async def _chunks(count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * BATCH_BYTES


@pytest.mark.parametrize("due", [False, True])
async def test_the_lease_is_renewed_only_when_due(tmp_path: Path, due: bool) -> None:
    """One write transaction per `RENEW_SECONDS`, not one per batch."""
    fd = os.open(tmp_path / "upload", os.O_RDWR | os.O_CREAT)
    writer, lease = ChunkWriter(fd, fsync=False), _Lease(due)
    try:
        receiver = BodyReceiver(writer, 0, 4 * BATCH_BYTES, [], lambda: lease.due, lease.keep)
        received = await receiver.receive(_chunks(4))
    finally:
        writer.close()
    assert received.written == 4 * BATCH_BYTES and received.cut is None
    assert lease.renewals == (4 if due else 0)
