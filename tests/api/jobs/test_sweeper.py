"""Retention and housekeeping: expired results, orphaned blobs, abandoned temp files."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from filejob.jobs.model import Job, utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import JobStatus
from filejob.jobs.sweeper import Sweeper
from tests.support.jobs import submit
from tests.support.settings import PROFILES
from tests.support.storage import blob_bytes, stored


def sweeper_for(app: Any, *, ttl: float = 3600, grace: float = 600) -> Sweeper:
    return Sweeper(app.state.services.jobs, result_ttl=ttl, orphan_grace=grace)


async def age_job(app: Any, job_id: str, seconds: float) -> None:
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(finished_at=utcnow() - timedelta(seconds=seconds))
        )


@pytest.mark.parametrize("profile", PROFILES)
async def test_retention_expires_old_finished_jobs_only(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, profile: str
) -> None:
    old = (await submit(client, b"old")).json()["id"]
    new = (await submit(client, b"new")).json()["id"]
    failed = (
        await submit(client, b"f", "slow", params={"fail": True, "steps": 1, "step_seconds": 0})
    ).json()["id"]
    await run_until_idle()
    await age_job(app, old, 7200)
    await age_job(app, failed, 7200)
    report = await sweeper_for(app, ttl=3600).sweep_once()
    assert report.expired == 2
    old_job = (await client.get(f"/v1/jobs/{old}")).json()
    assert old_job["status"] == "expired" and old_job["result"] is None
    assert (await client.get(f"/v1/jobs/{old}/result")).status_code == 410
    assert (await client.get(f"/v1/jobs/{failed}")).json()["status"] == "expired"
    assert (await client.get(f"/v1/jobs/{new}")).json()["status"] == "succeeded"
    assert (await client.get(f"/v1/jobs/{new}/result")).status_code == 200
    assert await stored(app) == [f"inputs/{new}", f"results/{new}.1"]


async def test_unreferenced_blobs_and_temp_files_are_removed_after_grace(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    kept = (await submit(client, b"kept")).json()["id"]
    await run_until_idle()
    orphan = data_dir / "blobs" / "results" / "zz" / "zzorphan"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"nobody's")
    young_orphan = data_dir / "blobs" / "inputs" / "yy" / "yyoung"
    young_orphan.parent.mkdir(parents=True)
    young_orphan.write_bytes(b"maybe a row is being committed")
    stale_temp = data_dir / "tmp" / "abc.part"
    stale_temp.write_bytes(b"crash leftover")
    past = time.time() - 7200
    for path in (orphan, stale_temp):
        os.utime(path, (past, past))
    for path in (data_dir / "blobs").rglob(kept):
        os.utime(path, (past, past))  # old but referenced: stays

    report = await sweeper_for(app, grace=600).sweep_once()
    assert report.orphans == 1 and report.temp_files == 1
    assert not orphan.exists() and not stale_temp.exists()
    assert young_orphan.exists()
    assert (await client.get(f"/v1/jobs/{kept}/result")).status_code == 200


@pytest.mark.parametrize("profile", ["distributed"])
async def test_orphaned_objects_are_removed(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, profile: str
) -> None:
    """On S3 (whose objects cannot be aged by hand), with no grace: an object no row
    references goes, the objects of a job stay."""
    kept = (await submit(client, b"kept")).json()["id"]
    await run_until_idle()
    storage = app.state.services.jobs.storage
    writer = await storage.create("results/zzorphan")
    writer.file.write(b"nobody's")
    await writer.commit()
    report = await sweeper_for(app, grace=0).sweep_once()
    assert report.orphans == 1
    assert await stored(app) == [f"inputs/{kept}", f"results/{kept}.1"]


async def test_queued_job_whose_hand_off_was_lost_is_rescued(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    executor = app.state.services.executor
    real_schedule = executor.schedule

    async def lose_it(job_id: str, upload: Any = None, **kwargs: Any) -> None:
        await upload.release()  # as if the response failed before the background task ran

    executor.schedule = lose_it
    lost = (await submit(client, b"lost")).json()["id"]
    executor.schedule = real_schedule
    await run_until_idle()
    assert not executor.knows(lost)

    sweeper = sweeper_for(app)
    assert (await sweeper.sweep_once()).rescued == 0  # young: its hand-off may be on its way
    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            update(Job).where(Job.id == lost).values(updated_at=utcnow() - timedelta(minutes=5))
        )
    assert (await sweeper.sweep_once()).rescued == 1
    assert executor.knows(lost)
    assert (await sweeper.sweep_once()).rescued == 0  # known now: not submitted twice
    await run_until_idle()
    assert (await client.get(f"/v1/jobs/{lost}")).json()["status"] == "succeeded"


@pytest.mark.parametrize("profile", PROFILES)
async def test_temp_sweep_spares_the_files_of_live_writers(app: Any, profile: str) -> None:
    storage = app.state.services.jobs.storage
    writer = await storage.create_named("results/abcdef")  # a process-run job's result
    old = time.time() - 7200
    os.utime(writer.path, (old, old))
    assert await storage.sweep_temp(0) == 0
    assert writer.path.exists()
    await writer.discard()
    assert not writer.path.exists()


async def put_blob(app: Any, key: str, content: bytes) -> None:
    writer = await app.state.services.jobs.storage.create(key)
    writer.file.write(content)
    await writer.commit()


@pytest.mark.parametrize("profile", PROFILES)
async def test_no_grace_spares_the_result_of_an_attempt_finishing_during_the_sweep(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, profile: str, monkeypatch: Any
) -> None:
    """A result is stored a moment before its row names it, and the row may move from
    `running` to `succeeded` while the sweep asks about it: either way the result stays,
    whatever the grace. A superseded attempt's result does go."""
    jobs = app.state.services.jobs
    job_id = (await submit(client, b"data")).json()["id"]
    await run_until_idle()
    async with jobs.db.write() as session:  # attempt 2 has stored its result, not yet said so
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status=JobStatus.RUNNING, attempts=2, result_key=None, finished_at=None)
        )
    await put_blob(app, f"results/{job_id}.2", b"attempt 2's result")

    async def finish(*_: Any) -> None:
        async with jobs.db.write() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=JobStatus.SUCCEEDED, result_key=f"results/{job_id}.2")
            )

    ask = JobRepository.referenced_keys

    async def finishing_meanwhile(repo: JobRepository, keys: Any) -> set[str]:
        execute = repo.session.execute

        async def execute_then_finish(*args: Any, **kwargs: Any) -> Any:
            result = await execute(*args, **kwargs)
            repo.session.execute = execute  # type: ignore[method-assign]
            await finish()  # between this statement and any next one
            return result

        repo.session.execute = execute_then_finish  # type: ignore[method-assign]
        return await ask(repo, keys)

    monkeypatch.setattr(JobRepository, "referenced_keys", finishing_meanwhile)
    report = await sweeper_for(app, grace=0).sweep_once()
    assert report.orphans == 1  # attempt 1's
    assert await stored(app) == [f"inputs/{job_id}", f"results/{job_id}.2"]
    assert (await client.get(f"/v1/jobs/{job_id}/result")).content == b"attempt 2's result"


@pytest.mark.parametrize("profile", PROFILES)
async def test_no_grace_spares_an_input_whose_row_is_being_committed(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, profile: str
) -> None:
    jobs = app.state.services.jobs
    record = jobs.executor.record
    reports = []

    async def sweep_then_record(session: Any, job: Any) -> None:
        # The input is stored, the row not yet committed: the sweep's worst moment.
        assert await stored(app) == [f"inputs/{job.id}"]
        reports.append(await sweeper_for(app, grace=0).sweep_once())
        await record(session, job)

    jobs.executor.record = sweep_then_record
    response = await submit(client, b"data")
    jobs.executor.record = record
    assert response.status_code == 202
    assert [r.orphans for r in reports] == [0]
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{response.json()['id']}")).json()
    assert job["status"] == "succeeded"
    assert not jobs.storing


async def test_temp_sweep_spares_a_blob_between_staging_and_its_name(
    app: Any, monkeypatch: Any
) -> None:
    """A commit links the temp file into tmp/ and then renames it into place; a sweep with no
    grace that runs between the two steps must not take it."""
    storage = app.state.services.jobs.storage
    link = storage.temp.files.link
    swept: list[int] = []

    def link_then_sweep(*args: Any) -> None:
        link(*args)
        swept.append(storage.temp.sweep(0))

    monkeypatch.setattr(storage.temp.files, "link", link_then_sweep)
    await put_blob(app, "results/abcdef.1", b"whole")
    assert swept == [0]
    assert await blob_bytes(app, "results/abcdef.1") == b"whole"
