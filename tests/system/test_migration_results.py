"""Migration 0014 lists the result of every job that had one before it: a row in job_results,
the job's `results`, and downloads, quotas and retention that treat it as any new result."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from filejob.app import create_app
from filejob.config import Settings
from filejob.db.migrations import upgrade
from tests.support.processors import test_registry
from tests.support.settings import make_settings

JOB_ID = "b2xkLWpvYi1iZWZvcmUtMTQ"
RESULT = b"made before 0014\n"


def old_job(url: str, data_dir: Path) -> None:
    """A succeeded job as revision 0013 stored it, its result file in place."""
    now = datetime.now(UTC).isoformat()  # not due for retention
    with create_engine(url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (id, status, processor, params, progress, attempts,"
                " delete_after_download, created_at, updated_at, finished_at, input_filename,"
                " input_content_type, input_size, input_sha256, result_key, result_filename,"
                " result_content_type, result_size, result_sha256, callback_attempts)"
                " VALUES (:id, 'succeeded', 'checksum', '{}', 1.0, 1, 0, :now, :now, :now,"
                " 'in.bin', 'application/octet-stream', 0, '', :key, 'old.txt', 'text/plain',"
                " :size, :sha, 0)"
            ),
            {
                "id": JOB_ID,
                "now": now,
                "key": f"results/{JOB_ID}.1",
                "size": len(RESULT),
                "sha": hashlib.sha256(RESULT).hexdigest(),
            },
        )
    blob = data_dir / "blobs" / "results" / JOB_ID[:2] / f"{JOB_ID}.1"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(RESULT)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A database with a job from revision 0013, migrated to head (Alembic's env runs its own
    event loop: before the test's)."""
    settings = make_settings(tmp_path)
    upgrade(settings.database_url, "0013")
    old_job(settings.database_url.replace("+aiosqlite", ""), tmp_path)
    upgrade(settings.database_url)
    return settings


async def test_a_result_from_before_0014_is_listed_and_downloaded(
    settings: Settings, tmp_path: Path
) -> None:
    sync_url = settings.database_url.replace("+aiosqlite", "")
    with create_engine(sync_url).connect() as connection:
        [row] = connection.execute(text("SELECT * FROM job_results")).mappings().all()
        listed = json.loads(connection.execute(text("SELECT results FROM jobs")).scalar_one())
    assert (row["job_id"], row["position"], row["key"], row["size"]) == (
        JOB_ID,
        0,
        f"results/{JOB_ID}.1",
        len(RESULT),
    )
    assert listed == [
        {
            "id": row["id"],
            "step": None,
            "filename": "old.txt",
            "content_type": "text/plain",
            "size": len(RESULT),
            "sha256": hashlib.sha256(RESULT).hexdigest(),
        }
    ]
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            job = (await client.get(f"/v1/jobs/{JOB_ID}")).json()
            [result] = job["results"]
            assert (await client.get(result["url"])).content == RESULT
            assert (await client.get("/v1/limits")).json()["storage_used_bytes"] == len(RESULT)
            assert await app.state.services.jobs.expire(JOB_ID)
            assert not (tmp_path / "blobs" / "results" / JOB_ID[:2] / f"{JOB_ID}.1").exists()
