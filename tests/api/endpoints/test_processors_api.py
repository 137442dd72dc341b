"""GET /v1/processors, the OpenAPI document, and FIFO execution order."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit


async def test_processors_listed_with_schemas(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/processors")).json()["items"]
    by_name = {item["name"]: item for item in items}
    assert {"checksum", "compress", "thumbnail", "csv-to-parquet"} <= set(by_name)
    for item in items:
        assert set(item) == {"name", "description", "params_schema", "content_types"}
        assert item["description"] and item["content_types"]
        assert item["params_schema"]["type"] == "object"
    compress = by_name["compress"]["params_schema"]["properties"]
    assert (
        compress["format"]["enum"] == ["gzip", "zstd"]
        or "anyOf" in compress["format"]
        or ("$ref" in str(compress["format"]))
    )
    assert "image/png" in by_name["thumbnail"]["content_types"]


async def test_openapi_document_describes_the_api(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result", "/v1/processors"} <= set(
        spec["paths"]
    )
    upload = spec["paths"]["/v1/jobs"]["post"]
    assert "202" in upload["responses"] and "413" in upload["responses"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"workers": 1}


async def test_jobs_run_one_at_a_time_in_submission_order(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    ids = [
        (await submit(client, b"x", "slow", params={"steps": 1, "step_seconds": 0.01})).json()["id"]
        for _ in range(6)
    ]
    await run_until_idle()
    jobs = [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in ids]
    starts = [job["started_at"] for job in jobs]
    assert starts == sorted(starts)
    # With one worker, each job starts only after the previous one finished.
    for previous, job in itertools.pairwise(jobs):
        assert previous["finished_at"] <= job["started_at"]
