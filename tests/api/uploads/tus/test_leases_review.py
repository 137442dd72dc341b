"""A request that completes an upload, or makes a final upload of its parts, holds their
leases until its commit, however long storing the file takes: meanwhile a DELETE (or a
retried PATCH, or the sweep) finds them taken. Leases are shortened here so that the work
visibly outlasts one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from filejob.auth.principal import Principal
from filejob.jobs.admission import JobRequest
from filejob.jobs.incoming import IncomingFile
from filejob.jobs.model import Job, utcnow
from filejob.resumable import concat, leases, writing
from filejob.resumable.errors import UploadLocked
from filejob.resumable.repository import UploadRepository
from filejob.resumable.service import ResumableUploads
from tests.api.uploads.tus import tus
from tests.support.wait import wait_until_async

LEASE = 1.0
Complete = Callable[[Any, Job], Awaitable[None]]


@pytest.fixture(autouse=True)
def short_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases, "LEASE_SECONDS", LEASE)
    monkeypatch.setattr(leases, "RENEW_SECONDS", LEASE / 10)
    monkeypatch.setattr(writing, "LEASE_SECONDS", LEASE)
    monkeypatch.setattr(concat, "LEASE_SECONDS", LEASE)


async def _lease_until(uploads: ResumableUploads, upload_id: str) -> datetime:
    async with uploads.db.read() as session:
        row = await UploadRepository(session).get_owned(upload_id, None)
    assert row is not None and row.lease_until is not None
    return row.lease_until


def _slow_completion(
    uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch, victim: Callable[[], str]
) -> list[str]:
    """Make the job's commit wait until the lease `victim()`'s upload had when it began has
    run out, then try to DELETE that upload; what the DELETE met is recorded."""
    original = uploads.jobs.accept_completing
    outcome: list[str] = []

    async def slow(
        upload: IncomingFile, request: JobRequest, caller: Principal, complete: Complete
    ) -> Job:
        upload_id = victim()
        first = await _lease_until(uploads, upload_id)

        async def ran_out() -> bool:
            return utcnow() > first

        await wait_until_async(ran_out, timeout=30)
        try:
            await uploads.terminate(upload_id, None)
            outcome.append("deleted")
        except UploadLocked:
            outcome.append("locked")
        return await original(upload, request, caller, complete)

    monkeypatch.setattr(uploads.jobs, "accept_completing", slow)
    return outcome


async def test_a_completing_upload_keeps_its_lease(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (await tus.create(client, 1000)).headers["location"]
    outcome = _slow_completion(uploads, monkeypatch, lambda: url.rsplit("/", 1)[1])
    done = await tus.patch(client, url, 0, b"x" * 1000)
    assert outcome == ["locked"]
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == "1000"


async def test_parts_keep_their_leases_while_joined(
    client: httpx.AsyncClient, uploads: ResumableUploads, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = []
    for data in (b"a" * 500, b"b" * 500):
        created = await client.post(
            "/v1/uploads",
            headers={**tus.TUS, "Upload-Concat": "partial", "Upload-Length": str(len(data))},
        )
        urls.append(created.headers["location"])
        assert (await tus.patch(client, urls[-1], 0, data)).status_code == 204
    outcome = _slow_completion(uploads, monkeypatch, lambda: urls[0].rsplit("/", 1)[1])
    final = await client.post(
        "/v1/uploads",
        headers={
            **tus.TUS,
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": tus.metadata(processor="checksum"),
        },
    )
    assert outcome == ["locked"]
    assert final.status_code == 201, final.text
