"""What bounds a fetch: FILEJOB_MAX_UPLOAD_BYTES and the owner's storage quota (less what the
owner's uploads in progress reserved), judged from the announced length before a byte is read
and while a body without one streams; and a body with a content coding, refused unread rather
than inflated. Each fails the job at once (no retry), and leaves no stored input and no temp
file.

The origin holds the rest of its body at a gate that the test opens only once the job has
failed: a fetch that read on past the bound (or waited for the body it was told the length
of) would never fail, and the test with it."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.config import Settings
from tests.support.auth import SECRET, tenant
from tests.support.imports import LIMIT, import_settings, post_import
from tests.support.jobs import submit, wait_for_status
from tests.support.origin import File, Gated, Origin, bomb
from tests.support.snapshots import _open_tmp_files
from tests.support.storage import assert_clean

RunUntilIdle = Callable[[], Any]


def data(size: int) -> bytes:
    return (b"\x00" + bytes(range(1, 256)) * (size // 255 + 1))[:size]


async def failed_with(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle, url: str, code: str
) -> dict[str, Any]:
    response = await post_import(client, url)
    assert response.status_code == 202, response.text
    await run_until_idle()
    job = await wait_for_status(client, response.json()["id"], "succeeded", "failed")
    assert (job["status"], job["attempts"]) == ("failed", 1), job
    assert job["error"]["code"] == code, job["error"]
    return job


def no_temp_files_open(settings: Settings) -> None:
    """No spool left open: unnamed temp files never show in a listing, only as descriptors."""
    assert _open_tmp_files(Path(settings.data_dir) / "tmp") == 0


def over(size: int, announced: bool, gate: threading.Event) -> Gated:
    """A body of `size` bytes: announced, all held at the gate; else streamed without a
    length, all but its last bytes sent at once."""
    return Gated(data(size), 0 if announced else size - 10, gate, length=announced)


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "streamed"])
async def test_a_source_over_the_upload_limit_fails_and_keeps_nothing(
    announced: bool,
    app: FastAPI,
    settings: Settings,
    client: httpx.AsyncClient,
    origin: Origin,
    run_until_idle: RunUntilIdle,
) -> None:
    gate = threading.Event()
    try:
        url = origin.serve("/big", over(LIMIT + 100, announced, gate))
        job = await failed_with(client, run_until_idle, url, "source_too_large")
    finally:
        gate.set()
    assert str(LIMIT) in job["error"]["message"]
    if announced:
        assert job["source"]["fetched_bytes"] == 0
    await assert_clean(app)
    no_temp_files_open(settings)


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
async def test_a_coded_source_fails_unread_however_far_it_would_inflate(
    coding: str,
    app: FastAPI,
    settings: Settings,
    client: httpx.AsyncClient,
    origin: Origin,
    run_until_idle: RunUntilIdle,
) -> None:
    """A few KiB that inflate to 64 MiB (256 times the limit): a client that decoded them
    would hold a chunk of that size before any limit could count it."""
    url = origin.serve("/bomb.bin", File(bomb(coding, 64 * 1024 * 1024), encoding=coding))
    job = await failed_with(client, run_until_idle, url, "source_encoding_unsupported")
    assert f"Content-Encoding {coding}" in job["error"]["message"]
    assert job["source"]["fetched_bytes"] == 0
    await assert_clean(app)
    no_temp_files_open(settings)


async def test_a_source_of_exactly_the_limit_is_taken(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    content = data(LIMIT)
    response = await post_import(client, origin.serve("/edge", File(content, length=False)))
    await run_until_idle()
    job = await wait_for_status(client, response.json()["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job["error"]
    assert job["input"]["size"] == LIMIT


class TestQuota:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return import_settings(auth="required", secret_key=SECRET)

    @pytest.mark.parametrize("announced", [True, False], ids=["content-length", "streamed"])
    async def test_the_owners_quota_bounds_the_fetch(
        self,
        announced: bool,
        app: FastAPI,
        settings: Settings,
        origin: Origin,
        run_until_idle: RunUntilIdle,
    ) -> None:
        alice = await tenant(app, "alice", max_storage_bytes=100_000)
        try:
            stored = await submit(alice, data(60_000))  # 40,000 bytes of the quota left
            assert stored.status_code == 202, stored.text
            gate = threading.Event()
            try:
                url = origin.serve("/half", over(50_000, announced, gate))
                job = await failed_with(alice, run_until_idle, url, "quota_exceeded")
            finally:
                gate.set()
            assert "of the storage quota of 100000 bytes" in job["error"]["message"]
            # Within what is left, the same owner's import is taken.
            small = origin.serve("/small", File(data(30_000), length=announced))
            taken = (await post_import(alice, small)).json()["id"]
            await run_until_idle()
            done = await wait_for_status(alice, taken, "succeeded", "failed")
            assert done["status"] == "succeeded", done["error"]
        finally:
            await alice.aclose()
        assert await app.state.services.jobs.storage.stat(f"inputs/{job['id']}") is None
        no_temp_files_open(settings)


class TestQuotaWithUploadsInProgress:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        """(The runner's import policy counts uploads in progress: compose.py gives it
        `resumable.repository.reserved_bytes`.)"""
        return import_settings(auth="required", secret_key=SECRET)

    @pytest.mark.parametrize("announced", [True, False], ids=["content-length", "streamed"])
    async def test_bytes_reserved_by_uploads_in_progress_count_as_stored(
        self,
        announced: bool,
        app: FastAPI,
        settings: Settings,
        origin: Origin,
        run_until_idle: RunUntilIdle,
    ) -> None:
        alice = await tenant(app, "alice", max_storage_bytes=100_000)
        try:
            # A tus upload of 70,000 bytes under way: 30,000 bytes of the quota left.
            created = await alice.post("/v1/uploads", headers=tus_creation(70_000))
            assert created.status_code == 201, created.text
            url = origin.serve("/reserved", File(data(50_000), length=announced))
            job = await failed_with(alice, run_until_idle, url, "quota_exceeded")
        finally:
            await alice.aclose()
        assert "more than the 30000 bytes left" in job["error"]["message"]
        assert await app.state.services.jobs.storage.stat(f"inputs/{job['id']}") is None
        no_temp_files_open(settings)


def tus_creation(length: int) -> dict[str, str]:
    """The headers of a tus creation request (`POST /v1/uploads`) of `length` bytes."""
    processor = base64.b64encode(b"checksum").decode()
    return {
        "Tus-Resumable": "1.0.0",
        "Upload-Length": str(length),
        "Upload-Metadata": f"processor {processor}",
    }
