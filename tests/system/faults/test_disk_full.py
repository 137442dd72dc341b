"""A full disk, for real: the data dir is a small tmpfs mounted by the test."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI

from filejob.app import create_app
from filejob.db.migrations import upgrade
from tests.support.jobs import submit
from tests.support.multipart import CountingBody
from tests.support.processors import test_registry
from tests.support.settings import make_settings

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def running_app(data_dir: Path, **overrides: Any) -> tuple[FastAPI, Any]:
    settings = make_settings(
        data_dir, retry_base_delay=0.01, retry_max_delay=0.02, max_attempts=2, **overrides
    )
    await anyio.to_thread.run_sync(upgrade, settings.database_url)  # alembic runs its own loop
    app = create_app(settings, registry=test_registry())
    return app, app.router.lifespan_context(app)


@pytest.fixture
async def client_on_small_disk(
    small_disk: Path,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app, lifespan = await running_app(small_disk)
    async with lifespan:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield app, client


def leftovers(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").rglob("*") if p.is_file()] + [
        p for p in (data_dir / "tmp").iterdir() if not p.name.startswith(".")
    ]


async def multipart_stream(size: int) -> AsyncIterator[bytes]:
    yield (
        b'--xyz\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n'
    )
    for _ in range(size // (256 * 1024)):
        yield os.urandom(256 * 1024)
    yield b"\r\n--xyz--\r\n"


@pytest.mark.parametrize("chunked", [True, False], ids=["enospc-while-receiving", "declared"])
async def test_upload_that_fills_the_disk_is_507_and_the_server_keeps_serving(
    client_on_small_disk: tuple[FastAPI, httpx.AsyncClient], small_disk: Path, chunked: bool
) -> None:
    app, client = client_on_small_disk
    if chunked:  # no Content-Length: admitted, and then the spool fills the disk
        response = await client.post(
            "/v1/jobs",
            content=multipart_stream(40 * MiB),
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
    else:  # refused up front: the declared size does not fit
        response = await submit(client, os.urandom(40 * MiB))
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "insufficient_storage"
    expected = "filled up while receiving" if chunked else "Not enough free storage"
    assert expected in response.json()["detail"]
    assert leftovers(small_disk) == []
    assert (await client.get("/v1/jobs")).json()["items"] == []
    # Space came back with the failed upload: the next one works.
    ok = await submit(client, b"small")
    assert ok.status_code == 202
    await app.state.services.executor.run_until_idle()
    assert (await client.get(f"/v1/jobs/{ok.json()['id']}")).json()["status"] == "succeeded"


async def test_result_that_does_not_fit_is_retried_then_fails_storage_full(
    client_on_small_disk: tuple[FastAPI, httpx.AsyncClient], small_disk: Path
) -> None:
    app, client = client_on_small_disk
    response = await submit(client, os.urandom(8 * MiB), "inflate", params={"factor": 3})
    assert response.status_code == 202
    await app.state.services.executor.run_until_idle()
    job = (await client.get(f"/v1/jobs/{response.json()['id']}")).json()
    assert job["status"] == "failed" and job["error"]["code"] == "storage_full"
    assert job["attempts"] == 2
    # Only the input remains: no partial result, no temp file.
    assert [p.parent.parent.name for p in leftovers(small_disk)] == ["inputs"]


async def test_admission_control_refuses_before_reading_but_serves_the_rest(
    small_disk: Path,
) -> None:
    app, lifespan = await running_app(small_disk)
    async with lifespan:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            job_id = (await submit(client, b"kept")).json()["id"]
            await app.state.services.executor.run_until_idle()

    app, lifespan = await running_app(small_disk, min_free_bytes=64 * MiB)  # > the disk
    async with lifespan:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = CountingBody(16)
            refused = await client.post(
                "/v1/jobs",
                content=body,
                headers={"content-type": "multipart/form-data; boundary=b"},
            )
            assert refused.status_code == 507
            assert refused.json()["code"] == "insufficient_storage"
            assert refused.headers["retry-after"]
            assert body.pulled <= 1  # refused before the body was read
            assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "succeeded"
            assert (await client.get(f"/v1/jobs/{job_id}/result")).status_code == 200
