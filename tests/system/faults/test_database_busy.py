"""A database locked by someone else: the server waits briefly, then answers 503, never 500."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit
from tests.support.storage import stored_files


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"db_busy_timeout": 0.3}


async def test_locked_database_gives_503_with_retry_after_and_keeps_nothing(
    client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    existing = (await submit(client, b"before")).json()["id"]
    await run_until_idle()
    other = sqlite3.connect(data_dir / "filejob.db", isolation_level=None, check_same_thread=False)
    try:
        # Another process takes the write lock: from a thread, as it would not block this
        # process's event loop (a write of the server's own, e.g. its first sweep, may be
        # under way and must be let finish first).
        await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
        response = await submit(client, b"during")
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "database_busy"
        assert response.headers["retry-after"]
        # Reads are not blocked by a writer (WAL).
        assert (await client.get(f"/v1/jobs/{existing}")).status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Nothing of the refused upload remains, and writes work again.
    assert len(stored_files(data_dir)) == 2  # the earlier job's input and result
    assert (await submit(client, b"after")).status_code == 202
