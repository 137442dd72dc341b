"""Helpers of the raw-body, digest and idempotency tests: a raw POST, and the check that a
refused upload kept nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.config import Settings
from tests.support.snapshots import assert_unchanged, take_snapshot
from tests.support.storage import assert_clean, job_rows

JOBS = "/v1/jobs"
NothingKept = Callable[[], Awaitable[None]]


async def post_raw(
    client: httpx.AsyncClient,
    content: Any,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /v1/jobs with `content` as the whole body; `processor=checksum` unless `query`
    says otherwise."""
    return await client.post(
        JOBS, params={"processor": "checksum", **(query or {})}, content=content, headers=headers
    )


@pytest.fixture
def nothing_kept(app: FastAPI, settings: Settings, profile: str) -> NothingKept:
    """`await nothing_kept()`: no job row, no stored or temp file; on the embedded profile, no
    spool left open either (compared with what the server kept before the test sent anything)."""
    before = take_snapshot(settings.data_dir) if profile == "embedded" else None

    async def check() -> None:
        if before is not None:
            await assert_unchanged(before)
        assert await job_rows(app) == 0
        await assert_clean(app)

    return check
