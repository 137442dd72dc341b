"""Periodic housekeeping in the server's lifespan: retention, orphaned blobs, temp files,
expired idempotency keys, expired resumable uploads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import anyio

from filejob.jobs.model import utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.service import JobService

log = logging.getLogger(__name__)

STRANDED_AFTER = 60.0  # seconds a queued job may go unknown to the executor before a rescue


@dataclass(frozen=True)
class SweepReport:
    rescued: int
    expired: int
    orphans: int
    temp_files: int
    idempotency_keys: int = 0  # expired Idempotency-Keys forgotten
    uploads: int = 0  # resumable uploads expired (their bytes removed)


class ExpiringUploads(Protocol):
    """Uploads in progress that expire (`resumable.service.ResumableUploads`, a layer above
    this one: given by whoever makes the sweeper)."""

    async def sweep(self) -> int:
        """Expire what is due, remove what has gone; how many expired."""
        ...


class Sweeper:
    def __init__(
        self,
        jobs: JobService,
        *,
        result_ttl: float,
        orphan_grace: float,
        uploads: ExpiringUploads | None = None,
    ) -> None:
        self.jobs = jobs
        self.result_ttl = result_ttl
        self.orphan_grace = orphan_grace
        self.uploads = uploads

    async def sweep_once(self) -> SweepReport:
        report = SweepReport(
            rescued=await self._rescue_stranded(),
            expired=await self._expire_old_results(),
            orphans=await self._remove_orphans(),
            temp_files=await self.jobs.storage.sweep_temp(self.orphan_grace),
            idempotency_keys=await self.jobs.idempotency.sweep(),
            uploads=await self.uploads.sweep() if self.uploads is not None else 0,
        )
        if any(vars(report).values()):
            log.info("sweep: %s", report)
        return report

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; trying again in %.0fs", interval)
            await anyio.sleep(interval)

    async def _rescue_stranded(self) -> int:
        """Re-schedule queued jobs the executor does not know: their hand-off was lost (the
        upload's response failed before its background task ran). Young ones are left alone,
        as their hand-off may still be on its way."""
        executor = self.jobs.executor
        if not executor.runs_jobs_here:
            return 0  # a shared queue: every row has its entry, and workers rescue each other
        cutoff = utcnow() - timedelta(seconds=STRANDED_AFTER)
        async with self.jobs.db.read() as session:
            queued = await JobRepository(session).queued_since(cutoff)
        now, rescued = utcnow(), 0
        for job in queued:
            if executor.knows(job.id):
                continue
            due = job.next_attempt_at
            await executor.schedule(
                job.id, delay=max(0.0, (due - now).total_seconds()) if due else 0
            )
            rescued += 1
        if rescued:
            log.warning("re-scheduled %d queued job(s) whose hand-off was lost", rescued)
        return rescued

    async def _expire_old_results(self) -> int:
        cutoff = utcnow() - timedelta(seconds=self.result_ttl)
        expired = 0
        while True:
            async with self.jobs.db.read() as session:
                due = await JobRepository(session).expirable(cutoff, limit=200)
            for job in due:
                expired += await self.jobs.expire(job.id)
            if len(due) < 200:
                return expired

    async def _remove_orphans(self) -> int:
        # Young files may belong to an upload whose row is being committed right now.
        cutoff = utcnow() - timedelta(seconds=self.orphan_grace)
        candidates = [b for b in await self.jobs.storage.list() if b.modified < cutoff]
        if not candidates:
            return 0
        # An input is stored before its row commits. A key still being submitted when the
        # query starts is spared; one whose row committed before that, the query sees.
        # (Other servers' submissions are protected by the grace alone.)
        storing = set(self.jobs.storing)
        async with self.jobs.db.read() as session:
            referenced = await JobRepository(session).referenced_keys(b.key for b in candidates)
        removed = 0
        for blob in candidates:
            if blob.key not in referenced and blob.key not in storing:
                removed += await self.jobs.storage.delete(blob.key)
        return removed
