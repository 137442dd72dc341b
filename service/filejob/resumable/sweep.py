"""The sweep of resumable uploads (a step of jobs/sweeper.py's): what expired loses its bytes
and becomes a tombstone (410) for one more TTL, then is forgotten (404). Bytes no upload in
progress (nor a finished partial upload) names go once older than the orphan grace: left by a
crash between a job's commit and its upload's bytes' removal, or by a creation that never
committed (store.py: files, or S3 multipart uploads and tails)."""

from __future__ import annotations

from datetime import timedelta

import anyio.to_thread

from filejob.db.engine import Database
from filejob.jobs.model import utcnow
from filejob.resumable.digests import RunningHashes
from filejob.resumable.repository import UploadRepository
from filejob.resumable.store import UploadStore

BATCH = 200


async def sweep_uploads(
    db: Database, files: UploadStore, hashes: RunningHashes, ttl: timedelta, grace: float
) -> int:
    """One sweep; how many uploads expired in it."""
    now, expired = utcnow(), 0
    while True:
        async with db.write() as session:
            due = await UploadRepository(session).expire_due(now, BATCH)
        for upload_id in due:
            hashes.forget(upload_id)
            await anyio.to_thread.run_sync(files.remove, upload_id)
        expired += len(due)
        if len(due) < BATCH:
            break
    async with db.write() as session:
        await UploadRepository(session).purge_tombstones(now - ttl)
    await _remove_stray_files(db, files, grace)
    return expired


async def _remove_stray_files(db: Database, files: UploadStore, grace: float) -> None:
    names = await anyio.to_thread.run_sync(files.names_older_than, grace)
    for start in range(0, len(names), BATCH):
        batch = names[start : start + BATCH]
        async with db.read() as session:
            kept = await UploadRepository(session).with_files(batch)
        for name in batch:
            if name not in kept:
                await anyio.to_thread.run_sync(files.remove, name)
