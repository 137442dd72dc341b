"""Import by URL: `POST /v1/jobs` with a `source_url` (a form without a file, the query string,
a JSON body) makes a job whose first phase fetches its input from a real origin server; the
fetch shows in the job (`phase`, `source`), is retried like any attempt when the network or
the origin fails for now, fails the job at once when the answer will not change, and is not
made again once its input is stored."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.imports import JOBS, WAYS, post_import
from tests.support.jobs import wait_for_status
from tests.support.origin import File, Gated, Origin, Status
from tests.support.problems import assert_problem
from tests.support.storage import assert_clean, blob_bytes, job_rows
from tests.support.wait import wait_until_async

RunUntilIdle = Callable[[], Any]


def payload(size: int) -> bytes:
    """Bytes no sniffer takes for text or a known format: octet-stream."""
    return b"\x00filejob import\n" + os.urandom(size - 16)


@contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return await wait_for_status(client, job_id, "succeeded", "failed", "cancelled")


async def attempts_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await client.get(f"{JOBS}/{job_id}/attempts")).json()["items"]
    return items


@pytest.mark.parametrize("way", WAYS)
async def test_an_import_fetches_its_input_then_processes_it(
    way: str, app: FastAPI, client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    data = payload(100_000)
    url = origin.serve("/files/report%20v2.bin", File(data))
    response = await post_import(client, url, way, max_attempts=2, reuse=True)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"{JOBS}/{job['id']}"
    assert (job["status"], job["phase"], job["max_attempts"]) == ("queued", None, 2)
    # No input yet: the name the URL suggests, and nothing else known.
    assert job["input"] == {
        "filename": "report v2.bin",
        "content_type": "application/octet-stream",
        "size": 0,
        "sha256": "",
    }
    assert job["source"] == {"url": url, "fetched_bytes": 0, "size": None}
    await run_until_idle()
    done = await finished(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    digest = hashlib.sha256(data).hexdigest()
    assert done["input"] == {
        "filename": "report v2.bin",
        "content_type": "application/octet-stream",
        "size": len(data),
        "sha256": digest,
    }
    assert done["source"] == {"url": url, "fetched_bytes": len(data), "size": len(data)}
    assert (done["attempts"], done["phase"]) == (1, None)
    assert await blob_bytes(app, f"inputs/{job['id']}") == data
    result = (await client.get(f"{JOBS}/{job['id']}/result")).json()
    assert (result["sha256"], result["size"]) == (digest, len(data))
    assert origin.requests == ["/files/report%20v2.bin"]


async def test_the_name_and_type_come_from_the_origin_and_the_bytes(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    text = b"a,b\n1,2\n"
    reply = File(
        text,
        content_type="text/csv; charset=utf-8",
        disposition="attachment; filename=\"plain.csv\"; filename*=UTF-8''r%C3%A9sum%C3%A9.csv",
    )
    job = (await post_import(client, origin.serve("/download?id=7", reply))).json()
    await run_until_idle()
    done = await finished(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert (done["input"]["filename"], done["input"]["content_type"]) == ("résumé.csv", "text/csv")


async def test_the_fetch_shows_as_a_phase_with_its_bytes(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    """A slow origin, held at a gate by the test: the job shows `fetching` with the bytes
    that arrived, then processes once the rest has."""
    data, gate = payload(200_000), threading.Event()
    url = origin.serve("/slow.bin", Gated(data, 50_000, gate))
    job_id = (await post_import(client, url)).json()["id"]
    try:

        async def fetching_half() -> dict[str, Any] | None:
            job: dict[str, Any] = (await client.get(f"{JOBS}/{job_id}")).json()
            fetched = job["source"]["fetched_bytes"]
            return job if job["phase"] == "fetching" and fetched == 50_000 else None

        job = await wait_until_async(fetching_half, message="the fetch's progress never showed")
    finally:
        gate.set()
    assert job["status"] == "running"
    assert job["source"]["size"] == len(data)
    assert (job["input"]["size"], job["progress"]) == (0, 0.0)
    done = await finished(client, job_id)
    assert done["status"] == "succeeded", done["error"]
    assert done["source"]["fetched_bytes"] == done["input"]["size"] == len(data)


async def test_a_job_cancelled_while_fetching_keeps_nothing(
    app: FastAPI, client: httpx.AsyncClient, origin: Origin
) -> None:
    gate = threading.Event()
    url = origin.serve("/held", Gated(payload(90_000), 10, gate))
    job_id = (await post_import(client, url)).json()["id"]
    try:

        async def fetching() -> bool:
            job = (await client.get(f"{JOBS}/{job_id}")).json()
            return bool(job["phase"] == "fetching" and job["source"]["fetched_bytes"] == 10)

        await wait_until_async(fetching)
        cancelled = await client.post(f"{JOBS}/{job_id}/cancel")
    finally:
        gate.set()
    assert cancelled.status_code == 200, cancelled.text
    assert (await finished(client, job_id))["status"] == "cancelled"
    await assert_clean(app)


async def test_a_503_is_retried_and_the_next_attempt_fetches(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    data = payload(5_000)
    url = origin.serve("/flaky", Status(503), File(data))
    job_id = (await post_import(client, url)).json()["id"]
    await run_until_idle()
    done = await finished(client, job_id)
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]
    assert done["input"]["sha256"] == hashlib.sha256(data).hexdigest()
    first, second = await attempts_of(client, job_id)
    assert first["outcome"] == "retrying" and first["error"]["code"] == "source_http_error"
    assert "503" in first["error"]["message"]
    assert second["outcome"] == "succeeded"
    assert origin.requests == ["/flaky", "/flaky"]


async def test_a_404_fails_the_job_without_a_retry(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    job_id = (await post_import(client, f"{origin.url}/missing", max_attempts=3)).json()["id"]
    await run_until_idle()
    done = await finished(client, job_id)
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error"]["code"] == "source_http_error"
    assert "404" in done["error"]["message"]
    assert origin.requests == ["/missing"]


async def test_an_origin_that_refuses_connections_is_retried_then_fails(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle
) -> None:
    with refusing_port() as port:
        url = f"http://127.0.0.1:{port}/file"
        job_id = (await post_import(client, url, max_attempts=2)).json()["id"]
        await run_until_idle()
        done = await finished(client, job_id)
    assert (done["status"], done["attempts"]) == ("failed", 2)
    assert done["error"]["code"] == "source_unreachable"


async def test_a_retry_after_the_fetch_does_not_fetch_again(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    data = payload(5_000)
    url = origin.serve("/once", File(data))
    params = {"key": f"import-{os.urandom(4).hex()}", "failures": 1}
    job_id = (await post_import(client, url, processor="flaky", params=params)).json()["id"]
    await run_until_idle()
    done = await finished(client, job_id)
    assert (done["status"], done["attempts"]) == ("succeeded", 2), done["error"]
    assert origin.requests == ["/once"]
    assert (await client.get(f"{JOBS}/{job_id}/result")).content == data


async def test_a_file_the_processor_does_not_take_fails_the_job(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    url = origin.serve("/notes.txt", File(b"plain text, not an image\n", content_type="image/png"))
    job_id = (await post_import(client, url, processor="thumbnail")).json()["id"]
    await run_until_idle()
    done = await finished(client, job_id)
    assert (done["status"], done["attempts"]) == ("failed", 1)
    assert done["error"]["code"] == "unsupported_media_type"


async def test_the_sha256_sent_is_checked_against_the_fetched_bytes(
    app: FastAPI, client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    data = payload(5_000)
    response = await post_import(client, origin.serve("/a", File(data)), "json", sha256="A" * 64)
    assert response.json()["input"]["sha256"] == "a" * 64  # what the fetch must confirm
    await run_until_idle()
    done = await finished(client, response.json()["id"])
    assert (done["status"], done["error"]["code"]) == ("failed", "digest_mismatch")
    assert await app.state.services.jobs.storage.stat(f"inputs/{done['id']}") is None


async def test_a_repeat_with_the_same_idempotency_key_is_the_same_import(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    url = origin.serve("/once", File(payload(5_000)))
    headers = {"Idempotency-Key": "import-1"}
    first = await post_import(client, url, headers=headers)
    repeat = await post_import(client, url, "json", headers=headers)
    assert repeat.status_code == 202, repeat.text
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.json()["id"] == first.json()["id"]
    other = await post_import(client, f"{url}?v=2", headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    await run_until_idle()
    assert (await finished(client, first.json()["id"]))["status"] == "succeeded"
    assert origin.requests == ["/once"]


class TestExactlyOneInput:
    async def test_a_form_with_a_file_and_a_source_url_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        response = await client.post(
            JOBS,
            data={"processor": "checksum", "source_url": f"{origin.url}/x"},
            files={"file": ("in.bin", b"bytes")},
        )
        assert_problem(response, 422, "file_or_source_url")
        assert await job_rows(app) == 0
        await assert_clean(app)
        assert origin.requests == []

    async def test_a_raw_body_with_a_source_url_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        query = {"processor": "checksum", "source_url": f"{origin.url}/x"}
        response = await client.post(JOBS, params=query, content=b"bytes")
        assert_problem(response, 422, "file_or_source_url")
        assert await job_rows(app) == 0
        await assert_clean(app)

    async def test_a_form_with_neither_is_refused(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(JOBS, files=[("processor", (None, b"checksum"))])
        assert_problem(response, 422, "file_or_source_url")
        assert await job_rows(app) == 0

    async def test_a_json_body_names_what_is_wrong(self, client: httpx.AsyncClient) -> None:
        # No source_url: no import, and no file either (as before imports).
        missing = await client.post(JOBS, json={"processor": "checksum"})
        assert "source_url" in assert_problem(missing, 415, "unsupported_media_type")["detail"]
        unknown = await client.post(
            JOBS, json={"processor": "checksum", "source_url": "http://x/", "file": "x"}
        )
        assert assert_problem(unknown, 422, "validation_error")["errors"][0]["loc"] == [
            "body",
            "file",
        ]
        typed = await client.post(
            JOBS, json={"processor": "checksum", "source_url": "http://x/", "max_attempts": "x"}
        )
        assert assert_problem(typed, 422, "validation_error")["errors"][0]["loc"] == [
            "body",
            "max_attempts",
        ]
        broken = await client.post(
            JOBS, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_problem(broken, 400, "malformed_request")
