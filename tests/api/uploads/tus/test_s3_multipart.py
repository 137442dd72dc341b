"""Resumable uploads on S3 storage live in S3 multipart uploads (resumable/multipart.py), not in
a file of one API server: parts uploaded as they fill, the bytes short of a part kept as a tail
object, any server going on where another stopped, completion server-side, and nothing left
in the bucket once an upload is done, terminated, expired or stray. Distributed profile only
(PostgreSQL + SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from filejob.app import create_app
from filejob.config import Settings
from filejob.errors import ServiceUnavailable
from filejob.jobs.model import utcnow
from filejob.jobs.sweeper import Sweeper
from filejob.resumable.model import ResumableUpload
from filejob.resumable.multipart import MultipartStore, object_key
from filejob.resumable.part_sink import PART_BYTES, tail_key
from filejob.resumable.service import ResumableUploads
from filejob.resumable.sweep import sweep_uploads
from tests.api.uploads.tus import tus
from tests.support.processors import test_registry
from tests.support.storage import blob_bytes

MiB = 1024 * 1024


@pytest.fixture
def profile() -> str:
    return "distributed"


def _store(uploads: ResumableUploads) -> MultipartStore:
    assert isinstance(uploads.files, MultipartStore)  # chosen once, by the storage
    return uploads.files


async def _pending(uploads: ResumableUploads) -> list[str]:
    """Keys of the multipart uploads in progress under the test's prefix."""
    pending = await anyio.to_thread.run_sync(_store(uploads).parts.pending, "")
    return sorted(p.key for p in pending)


async def _tails(uploads: ResumableUploads) -> list[str]:
    keys = await anyio.to_thread.run_sync(_store(uploads).parts.keys, "uploads/")
    return sorted(key for key, _ in keys)


async def _inputs(app: FastAPI) -> list[str]:
    """The inputs among what the jobs' storage calls blobs (the uploads area is not)."""
    blobs = await app.state.services.jobs.storage.list()
    return sorted(info.key for info in blobs if info.key.startswith("inputs/"))


def _id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _local_files(uploads: ResumableUploads) -> list[str]:
    return [path.name for path in uploads.files.folder.iterdir()]


@asynccontextmanager
async def _second_server(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Another API server on the same database and bucket (no state shared in memory)."""
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as c:
            yield app, c


async def _job_input(client: httpx.AsyncClient, app: FastAPI, answer: httpx.Response) -> Any:
    job = (await client.get(f"/v1/jobs/{tus.job_of(answer)}")).json()
    return job["input"], await blob_bytes(app, f"inputs/{job['id']}")


async def test_odd_patches_become_a_job_with_the_right_bytes_and_no_local_file(
    client: httpx.AsyncClient, app: FastAPI, uploads: ResumableUploads
) -> None:
    content = os.urandom(13 * MiB + 123)
    cuts = [0, 1_000_003, 6_500_004, 8_722_226, len(content)]  # < a part, > a part, ...
    url = (await tus.create(client, len(content))).headers["location"]
    assert await _pending(uploads) == [object_key(_id(url))]
    for start, end in itertools.pairwise(cuts):
        answer = await tus.patch(client, url, start, content[start:end])
        assert answer.status_code == 204, answer.text
        assert _local_files(uploads) == []  # no byte of it on this server's disk
        if end < len(content):
            # The acknowledged bytes past the last whole part wait as one small object,
            # which is no blob the jobs' orphan sweep could take (whatever its grace).
            assert await _tails(uploads) == [tail_key(_id(url), end)]
            await Sweeper(app.state.services.jobs, result_ttl=3600, orphan_grace=-60).sweep_once()
    meta, stored = await _job_input(client, app, answer)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest() and meta["size"] == len(content)
    assert stored == content
    # Completed server-side; nothing of the upload is left but the job's input.
    assert await _pending(uploads) == [] and await _tails(uploads) == []
    assert await _inputs(app) == [f"inputs/{tus.job_of(answer)}"]


async def test_a_second_server_goes_on_where_the_first_stopped(
    client: httpx.AsyncClient, app: FastAPI, uploads: ResumableUploads, settings: Settings
) -> None:
    """The other server has neither the multipart upload's id nor the running sha256: it
    finds the one in the bucket and hashes the completed object."""
    content = os.urandom(2 * PART_BYTES + 777)
    url = (await tus.create(client, len(content))).headers["location"]
    first = PART_BYTES + 5
    assert (await tus.patch(client, url, 0, content[:first])).status_code == 204
    async with _second_server(settings) as (_, other):
        assert (await tus.head(other, url)).headers["upload-offset"] == str(first)
        middle = first + 3 * MiB
        answer = await tus.patch(other, url, first, content[first:middle])
        assert answer.status_code == 204, answer.text
    # And back: this server's own state is stale (it did not see the middle bytes).
    last = await tus.patch(client, url, middle, content[middle:])
    assert last.status_code == 204, last.text
    meta, stored = await _job_input(client, app, last)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored == content
    assert await _pending(uploads) == [] and await _tails(uploads) == []


async def test_termination_aborts_the_multipart_upload(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    url = (await tus.create(client, 3 * PART_BYTES)).headers["location"]
    assert (await tus.patch(client, url, 0, os.urandom(PART_BYTES + 10))).status_code == 204
    assert await _pending(uploads) and await _tails(uploads)
    assert (await client.delete(url, headers=tus.TUS)).status_code == 204
    assert await _pending(uploads) == [] and await _tails(uploads) == []


async def test_expired_uploads_lose_their_parts_and_tails(
    client: httpx.AsyncClient, app: FastAPI, uploads: ResumableUploads
) -> None:
    url = (await tus.create(client, 3 * PART_BYTES)).headers["location"]
    assert (await tus.patch(client, url, 0, os.urandom(PART_BYTES + 10))).status_code == 204
    async with uploads.db.write() as session:
        await session.execute(
            update(ResumableUpload)
            .where(ResumableUpload.id == _id(url))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    sweeper = Sweeper(app.state.services.jobs, result_ttl=3600, orphan_grace=3600, uploads=uploads)
    assert (await sweeper.sweep_once()).uploads == 1
    assert await _pending(uploads) == [] and await _tails(uploads) == []
    assert (await tus.head(client, url)).status_code == 410


async def test_the_sweep_removes_stray_multipart_uploads_and_spares_live_ones(
    client: httpx.AsyncClient, uploads: ResumableUploads
) -> None:
    """A creation that never committed its row, a crash that left a tail: swept once older
    than the grace; an upload in progress keeps everything."""
    store = _store(uploads)
    live = (await tus.create(client, 2 * PART_BYTES)).headers["location"]
    assert (await tus.patch(client, live, 0, os.urandom(PART_BYTES + 1))).status_code == 204
    stray = "strayUploadOfACrash000"
    await anyio.to_thread.run_sync(store.create, stray)
    await anyio.to_thread.run_sync(store.parts.put, tail_key(stray, 3), io.BytesIO(b"abc"), 3)
    await sweep_uploads(uploads.db, store, uploads.hashes, uploads.ttl, grace=-60)
    assert await _pending(uploads) == [object_key(_id(live))]
    assert await _tails(uploads) == [tail_key(_id(live), PART_BYTES + 1)]


@pytest.mark.parametrize(
    "sizes",
    [[PART_BYTES + 3, PART_BYTES, 11], [300_000, 1, PART_BYTES + 70_000]],
    ids=["copied-server-side", "streamed"],
)
async def test_concatenation_on_s3(
    client: httpx.AsyncClient, app: FastAPI, uploads: ResumableUploads, sizes: list[int]
) -> None:
    """Parts of at least a part's bytes are copied by the store (UploadPartCopy); smaller
    ones cannot be (S3's rule for parts) and are streamed; the job's bytes are right."""
    pieces = [os.urandom(size) for size in sizes]
    urls = []
    for piece in pieces:
        headers = {**tus.TUS, "Upload-Concat": "partial", "Upload-Length": str(len(piece))}
        url = (await client.post("/v1/uploads", headers=headers)).headers["location"]
        assert (await tus.patch(client, url, 0, piece)).status_code == 204
        urls.append(url)
    final = await client.post(
        "/v1/uploads",
        headers={
            **tus.TUS,
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": tus.metadata(processor="checksum"),
        },
    )
    assert final.status_code == 201, final.text
    content = b"".join(pieces)
    meta, stored = await _job_input(client, app, final)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest() and stored == content
    assert await _pending(uploads) == [] and await _tails(uploads) == []
    assert await _inputs(app) == [f"inputs/{tus.job_of(final)}"]
    assert _local_files(uploads) == []


async def test_a_job_not_made_at_the_end_leaves_the_upload_resumable(
    client: httpx.AsyncClient,
    app: FastAPI,
    uploads: ResumableUploads,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The multipart upload was completed for the job, which then failed: the upload is
    reopened from the object (its parts copied back server-side) at the offset it had."""
    content = os.urandom(2 * PART_BYTES + 4321)
    url = (await tus.create(client, len(content))).headers["location"]
    middle = PART_BYTES + 99
    assert (await tus.patch(client, url, 0, content[:middle])).status_code == 204
    jobs = uploads.jobs
    accept = jobs.accept_completing

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(jobs, "accept_completing", accept)
        raise ServiceUnavailable("The database is busy.")

    monkeypatch.setattr(jobs, "accept_completing", failing_once)
    refused = await tus.patch(client, url, middle, content[middle:])
    assert refused.status_code == 503, refused.text
    assert (await tus.head(client, url)).headers["upload-offset"] == str(middle)
    assert await _pending(uploads) == [object_key(_id(url))]
    assert await _inputs(app) == []  # the completed object went back to parts
    last = await tus.patch(client, url, middle, content[middle:])
    assert last.status_code == 204, last.text
    meta, stored = await _job_input(client, app, last)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest() and stored == content


async def test_an_upload_completed_by_a_server_that_died_is_reopened(
    client: httpx.AsyncClient, app: FastAPI, uploads: ResumableUploads, settings: Settings
) -> None:
    """A server completed the multipart upload and died before its commit: the object is
    there, no multipart upload is. Another server reopens the upload from it."""
    content = os.urandom(2 * PART_BYTES + 10)
    url = (await tus.create(client, len(content))).headers["location"]
    middle = PART_BYTES + 7
    assert (await tus.patch(client, url, 0, content[:middle])).status_code == 204
    store = _store(uploads)
    multipart = await anyio.to_thread.run_sync(store.multipart, _id(url), PART_BYTES)
    await anyio.to_thread.run_sync(store.complete, _id(url), PART_BYTES, multipart)
    assert await _pending(uploads) == []
    # The jobs' orphan sweep, however eager, leaves the completed object alone: it is the
    # upload's (judged by the uploads' own sweep, by its row), not a job input without a job.
    await Sweeper(app.state.services.jobs, result_ttl=3600, orphan_grace=-60).sweep_once()
    async with _second_server(settings) as (_, other):
        last = await tus.patch(other, url, middle, content[middle:])
        assert last.status_code == 204, last.text
    meta, stored = await _job_input(client, app, last)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest() and stored == content
    assert await _pending(uploads) == [] and await _tails(uploads) == []
