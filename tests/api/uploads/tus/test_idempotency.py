"""Idempotency-Key on POST /v1/uploads: a repeat of a tus creation gets the upload the first
one made, as it is now (its offset), and makes no other; the same key for another creation,
or for a POST /v1/jobs, is 422; while the first is in flight, 409. A creation that fails
leaves the key free; the key goes with its upload's row."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, func, select

from filejob.jobs.idempotency import IdempotencyKey
from filejob.resumable.model import ResumableUpload
from tests.api.uploads.tus import tus
from tests.support.jobs import submit
from tests.support.problems import assert_problem

KEY = {"Idempotency-Key": "2f1c5a5e-upload-key"}


async def count(app: FastAPI, table: Any) -> int:
    async with app.state.services.jobs.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_repeat_gets_the_same_upload_at_its_offset(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await tus.create(client, 10, headers=KEY)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    url = first.headers["location"]
    assert (await tus.patch(client, url, 0, b"01234")).status_code == 204
    again = await tus.create(client, 10, headers=KEY)
    assert again.status_code == 201, again.text
    assert again.headers["location"] == url
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["upload-offset"] == "5"  # as it is now: go on from there
    assert again.headers["tus-resumable"] == "1.0.0"
    assert await count(app, ResumableUpload) == 1
    done = await tus.patch(client, url, 5, b"56789")
    assert done.status_code == 204
    replayed = await tus.create(client, 10, headers=KEY)
    assert replayed.headers["link"] == done.headers["link"]  # the finished upload's job


async def test_a_repeat_of_a_creation_with_upload_writes_nothing_again(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await tus.create(client, 10, body=b"abc", headers=KEY)
    assert first.status_code == 201 and first.headers["upload-offset"] == "3"
    again = await tus.create(client, 10, body=b"abc", headers=KEY)
    assert again.status_code == 201, again.text
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["upload-offset"] == "3"
    assert (await tus.head(client, first.headers["location"])).headers["upload-offset"] == "3"


async def test_the_key_for_another_creation_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert (await tus.create(client, 10, headers=KEY)).status_code == 201
    other = await tus.create(client, 11, headers=KEY)
    assert_problem(other, 422, "idempotency_key_reused")
    assert other.headers["tus-resumable"] == "1.0.0"
    other_job = await tus.create(client, 10, processor="compress", headers=KEY)
    assert_problem(other_job, 422, "idempotency_key_reused")
    assert await count(app, ResumableUpload) == 1


async def test_a_key_of_a_job_is_not_a_key_of_an_upload(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert (await submit(client, b"0123456789", headers=KEY)).status_code == 202
    assert_problem(await tus.create(client, 10, headers=KEY), 422, "idempotency_key_reused")
    assert await count(app, ResumableUpload) == 0


async def test_a_failed_creation_leaves_the_key_free(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    refused = await tus.create(client, 10, processor="no-such-processor", headers=KEY)
    assert_problem(refused, 422, "unknown_processor")
    assert await count(app, IdempotencyKey) == 0
    assert (await tus.create(client, 10, headers=KEY)).status_code == 201


async def test_in_flight_is_409(app: FastAPI, client: httpx.AsyncClient) -> None:
    await app.state.services.jobs.idempotency.claim(
        None, KEY["Idempotency-Key"], ttl=60, abandoned_after=600
    )
    answer = await tus.create(client, 10, headers=KEY)
    assert_problem(answer, 409, "idempotency_key_in_flight")
    assert answer.headers["retry-after"]
    assert await count(app, ResumableUpload) == 0


async def test_a_final_upload_repeated_makes_one_job(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    parts = []
    for piece in (b"hello ", b"world"):
        made = await tus.create(client, len(piece), headers={"Upload-Concat": "partial"})
        assert (await tus.patch(client, made.headers["location"], 0, piece)).status_code == 204
        parts.append(made.headers["location"])
    final = {"Upload-Concat": "final;" + " ".join(parts), **KEY}
    first = await client.post(
        "/v1/uploads",
        headers={**tus.TUS, "Upload-Metadata": tus.metadata(processor="checksum"), **final},
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        "/v1/uploads",
        headers={**tus.TUS, "Upload-Metadata": tus.metadata(processor="checksum"), **final},
    )
    assert again.status_code == 201, again.text
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["link"] == first.headers["link"]
    assert again.headers["idempotent-replayed"] == "true"


async def test_the_key_goes_with_its_upload(app: FastAPI, client: httpx.AsyncClient) -> None:
    url = (await tus.create(client, 10, headers=KEY)).headers["location"]
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            delete(ResumableUpload).where(ResumableUpload.id == url.split("/")[-1])
        )
    assert await count(app, IdempotencyKey) == 0  # ON DELETE CASCADE
    fresh = await tus.create(client, 10, headers=KEY)
    assert fresh.status_code == 201 and fresh.headers["location"] != url
