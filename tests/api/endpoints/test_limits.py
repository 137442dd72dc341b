"""Upload size limits: refused with 413 before or while reading, leaving nothing behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit
from tests.support.storage import assert_clean, job_rows


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_upload_bytes": 2 * 1024 * 1024, "spool_memory_bytes": 64 * 1024}


async def test_too_large_by_content_length_is_413_before_reading(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    response = await submit(client, os.urandom(3 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_too_large_without_content_length_is_413_while_streaming(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    boundary = "b0undary"
    sent = 0

    async def body() -> Any:
        nonlocal sent
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield head
        for _ in range(64):  # 4 MiB in 64 KiB chunks, no Content-Length
            sent += 1
            yield os.urandom(64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/v1/jobs",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_file_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await submit(client, os.urandom(2 * 1024 * 1024))
    assert response.status_code == 202
