"""FILEJOB_S3_PRESIGNED_DOWNLOADS: each result comes straight from the object store, as the
first one does; the zip is the server's own."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.results.split_jobs import described, expected, sha256, split_job


@pytest.fixture
def profile() -> str:
    return "distributed"  # presigning is an S3 ability


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"s3_presigned_downloads": True}


async def test_each_result_redirects_to_the_store(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    job = await split_job(client, run_until_idle, parts=2)
    async with httpx.AsyncClient(timeout=30) as outside:  # real requests to SeaweedFS
        for result, (name, data) in zip(job["results"], expected(parts=2), strict=True):
            answer = await client.get(result["url"])
            assert answer.status_code == 307, answer.text
            direct = await outside.get(answer.headers["location"])
            assert direct.status_code == 200 and sha256(direct.content) == result["sha256"]
            assert direct.content == data
            assert f'filename="{name}"' in direct.headers["content-disposition"]
    zipped = await client.get(f"/v1/jobs/{job['id']}/results.zip")
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        found = [(i.filename, i.file_size, sha256(archive.read(i))) for i in archive.infolist()]
    assert found == described(expected(parts=2))
