"""The sha256 of an upload is computed while it arrives: on the event loop for a small file
or a large one's tail, in 1 MiB batches in a thread for the rest, always in order. Sizes
around each of those bounds, in memory and rolled over to disk."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from filejob.api.uploads.pipeline import PipelinedUpload
from tests.support.jobs import submit

INLINE, BATCH = PipelinedUpload.INLINE_HASH_BYTES, PipelinedUpload.BATCH_BYTES
SIZES = [1, INLINE, INLINE + 1, BATCH - 1, BATCH, BATCH + INLINE + 7, 3 * BATCH + 1]


@pytest.mark.parametrize("size", SIZES)
async def test_the_digest_is_the_whole_files(
    client: httpx.AsyncClient, run_until_idle: object, size: int
) -> None:
    content = os.urandom(size)
    response = await submit(client, content)
    assert response.status_code == 202, response.text
    stored = response.json()["input"]
    assert stored["size"] == size
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
