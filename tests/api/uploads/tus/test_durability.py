"""What an upload keeps when things go wrong: a body cut off keeps what arrived, two requests
never write one upload at once (the database decides, on either profile), a dead server's
request is taken over, the input's sha256 is right whichever server took which request, and
unfinished uploads expire (410), are swept, and are forgotten (404)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from filejob.auth.principal import Principal
from filejob.errors import MalformedRequest
from filejob.jobs.model import utcnow
from filejob.jobs.sweeper import Sweeper
from filejob.resumable import receive
from filejob.resumable.digests import Checksum
from filejob.resumable.errors import ChecksumMismatch
from filejob.resumable.files import UploadFiles
from filejob.resumable.leases import new_token
from filejob.resumable.model import ResumableUpload, UploadState
from filejob.resumable.service import ResumableUploads
from tests.api.uploads.tus import tus
from tests.support.wait import wait_until_async

ANONYMOUS = Principal(owner_id=None, name="anonymous")


async def _cut_after(data: bytes, why: Exception) -> AsyncIterator[bytes]:
    """A body that delivers `data`, a chunk at a time, then fails as a dropped client does."""
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]
    raise why


async def _whole(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _set_row(uploads: ResumableUploads, upload_id: str, **values: Any) -> None:
    async with uploads.db.write() as session:
        await session.execute(
            update(ResumableUpload).where(ResumableUpload.id == upload_id).values(**values)
        )


def _id(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def _writing(uploads: ResumableUploads) -> bool:
    """Whether a request of this process holds an upload now."""
    return bool(uploads.writing)


async def test_a_cut_body_keeps_what_arrived(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    content = os.urandom(300_000)
    url = (await tus.create(client, len(content))).headers["location"]
    cut = MalformedRequest("The client disconnected before the body was complete.")
    with pytest.raises(MalformedRequest):
        await uploads.write(_id(url), ANONYMOUS, 0, _cut_after(content[:200_000], cut))
    assert (await tus.head(client, url)).headers["upload-offset"] == "200000"
    last = await tus.patch(client, url, 200_000, content[200_000:])
    job = (await client.get(f"/v1/jobs/{tus.job_of(last)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_a_cut_body_with_a_checksum_keeps_nothing(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    content = os.urandom(100_000)
    url = (await tus.create(client, len(content))).headers["location"]
    checksum = tus.checksum("sha256", content)["Upload-Checksum"]
    with pytest.raises(MalformedRequest):
        await uploads.write(
            _id(url),
            ANONYMOUS,
            0,
            _cut_after(content[:50_000], MalformedRequest("gone")),
            checksum=Checksum.parse(checksum),
        )
    assert (await tus.head(client, url)).headers["upload-offset"] == "0"
    with pytest.raises(ChecksumMismatch):
        await uploads.write(
            _id(url), ANONYMOUS, 0, _whole(content[:50_000]), checksum=Checksum.parse(checksum)
        )
    assert (await tus.head(client, url)).headers["upload-offset"] == "0"


async def test_sha256_when_another_server_took_the_first_request(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    """No running hash here for the upload (as on a server that did not take its earlier
    requests): the file is hashed once at the end, to the same digest."""
    content = os.urandom(2_500_000)
    url = (await tus.create(client, len(content))).headers["location"]
    assert (await tus.patch(client, url, 0, content[:1_200_000])).status_code == 204
    uploads.hashes.forget(_id(url))
    last = await tus.patch(client, url, 1_200_000, content[1_200_000:])
    job = (await client.get(f"/v1/jobs/{tus.job_of(last)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_a_newer_request_takes_over_from_one_waiting_for_its_client(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request stalled mid-body (its client cut off, unbeknown to the server) does not keep
    the client's next request out: that one takes over at once, the stalled one stops."""
    monkeypatch.setattr(receive, "STALLED_SECONDS", 0.0)  # stalled as soon as it waits
    content = os.urandom(200_000)
    url = (await tus.create(client, len(content))).headers["location"]
    first_half_sent = asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield content[:100_000]
        first_half_sent.set()
        await asyncio.Event().wait()  # the rest never comes
        yield b""

    stalled = asyncio.create_task(tus.patch(client, url, 0, stalled_body()))
    await asyncio.wait_for(first_half_sent.wait(), 30)
    await wait_until_async(lambda: _writing(uploads), timeout=30)
    # While the stalled request holds the upload, DELETE waits its turn.
    assert (await client.delete(url, headers=tus.TUS)).status_code == 423
    newer = await tus.patch(client, url, 0, content)
    assert newer.status_code == 204, newer.text
    interrupted = await asyncio.wait_for(stalled, 30)
    assert interrupted.status_code == 400
    assert interrupted.json()["code"] == "upload_interrupted"
    job = (await client.get(f"/v1/jobs/{tus.job_of(newer)}")).json()
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


async def test_two_servers_never_write_one_upload_at_once(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    """A request of another live server holds the upload: this one is refused (423) until that
    lease is released or runs out; then it goes on from the committed offset."""
    url = (await tus.create(client, 6)).headers["location"]
    until = utcnow() + timedelta(seconds=60)
    await _set_row(uploads, _id(url), lease_token="other-host/1:1:ab", lease_until=until)
    locked = await tus.patch(client, url, 0, b"abcdef")
    assert locked.status_code == 423 and locked.json()["code"] == "upload_locked"
    assert locked.headers["retry-after"] == "1"
    await _set_row(uploads, _id(url), lease_token=None, lease_until=None)
    assert (await tus.patch(client, url, 0, b"abcdef")).status_code == 204


async def test_a_dead_servers_lease_is_taken_over(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    url = (await tus.create(client, 6)).headers["location"]
    # A lease held by a process of this host that no longer runs (a server killed mid-PATCH).
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    token = new_token().rsplit(":", 2)
    dead_token = f"{token[0]}:{dead.pid}:{token[2]}"
    until = utcnow() + timedelta(seconds=60)
    await _set_row(uploads, _id(url), lease_token=dead_token, lease_until=until)
    assert (await tus.patch(client, url, 0, b"abc")).status_code == 204
    # A lease held on another host is waited out.
    await _set_row(uploads, _id(url), lease_token="elsewhere/1:1:ab", lease_until=until)
    assert (await tus.patch(client, url, 3, b"def")).status_code == 423
    await _set_row(uploads, _id(url), lease_until=utcnow() - timedelta(seconds=1))
    assert (await tus.patch(client, url, 3, b"def")).status_code == 204


async def test_expired_uploads_answer_410_then_404(
    client: httpx.AsyncClient, uploads: ResumableUploads, app: Any
) -> None:
    url = (await tus.create(client, 10)).headers["location"]
    assert (await tus.patch(client, url, 0, b"12345")).status_code == 204
    await _set_row(uploads, _id(url), expires_at=utcnow() - timedelta(seconds=1))
    for answer in (
        await tus.head(client, url),
        await tus.patch(client, url, 5, b"67890"),
        await client.get(url),
        await client.delete(url, headers=tus.TUS),
    ):
        assert answer.status_code == 410
        assert answer.headers["tus-resumable"] == "1.0.0"
    services = app.state.services
    sweeper = Sweeper(services.jobs, result_ttl=3600, orphan_grace=3600, uploads=uploads)
    report = await sweeper.sweep_once()
    assert report.uploads == 1
    assert list(uploads.files.folder.iterdir()) == []
    async with uploads.db.read() as session:
        row = await session.get(ResumableUpload, _id(url))
    assert row is not None and row.state is UploadState.EXPIRED  # a tombstone
    assert (await tus.head(client, url)).status_code == 410
    # A later sweep, a TTL on, forgets it.
    await _set_row(uploads, _id(url), expires_at=utcnow() - uploads.ttl - timedelta(seconds=1))
    assert (await sweeper.sweep_once()).uploads == 0
    assert (await tus.head(client, url)).status_code == 404


async def test_the_sweep_spares_live_uploads_and_removes_stray_files(
    client: httpx.AsyncClient, uploads: ResumableUploads, profile: str
) -> None:
    if profile == "distributed":
        pytest.skip("the local store's files (on S3: tests/api/uploads/tus/test_s3_multipart.py)")
    files = uploads.files
    assert isinstance(files, UploadFiles)
    url = (await tus.create(client, 10)).headers["location"]
    stray = files.folder / "leftover-of-a-crash"
    stray.write_bytes(b"old")
    os.utime(stray, (0, 0))
    os.utime(files.path(_id(url)), (0, 0))
    assert await uploads.sweep() == 0
    assert not stray.exists()
    assert files.path(_id(url)).exists()
    assert (await tus.patch(client, url, 0, b"0123456789")).status_code == 204
