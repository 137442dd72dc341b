"""Waiting for a job to change, for live events and long polls.

Every writer of a job (the runner in this process, a worker elsewhere, another API server)
bumps the row's `updated_at`, so the database is the one source of changes on every profile.
One poller per process reads the `updated_at` of the jobs someone is waiting on, in a single
indexed query, and wakes the waiters whose job moved. It polls when poked: after each write
this process commits, and on PostgreSQL on each NOTIFY a job row's trigger sends (migration
0006), so a change made by any process reaches a watcher at once. Without a poke it still
polls every `fallback` seconds, in case a notification was lost with its connection.

The same polls feed the owner-wide streams (`GET /v1/events`): while one is open, each poll also
reads which jobs changed lately, of any owner, and hands them on (jobs/changes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from filejob.db.engine import Database
from filejob.jobs.changes import ChangeFeed, Subscription
from filejob.jobs.model import Job
from filejob.jobs.repository import JobRepository

log = logging.getLogger(__name__)

CHANNEL = "filejob_job_changed"  # NOTIFY-ed by the trigger of migration 0006


def version_of(job: Job) -> str:
    """A job's change marker (microseconds of `updated_at`): the SSE event id."""
    return str(int(job.updated_at.timestamp() * 1_000_000))


@dataclass(eq=False)
class _Waiter:
    since: datetime
    woken: asyncio.Event = field(default_factory=asyncio.Event)


class JobWatcher:
    def __init__(self, db: Database, *, gap: float = 0.05, fallback: float = 1.0) -> None:
        self.db = db
        self.gap = gap  # least seconds between two polls: pokes in a burst make one poll
        self.fallback = fallback
        self._waiters: dict[str, set[_Waiter]] = {}
        self.feed = ChangeFeed()  # for the owner-wide streams
        self._someone_waits = asyncio.Event()
        self._poked = asyncio.Event()

    def poke(self) -> None:
        """Something may have changed: poll soon (cheap; nothing happens if no one waits)."""
        self._poked.set()

    async def changed(self, job_id: str, since: datetime, within: float) -> bool:
        """Wait until the job's `updated_at` is no longer `since` (or the job is gone): True,
        or False after `within` seconds."""
        waiter = _Waiter(since)
        self._waiters.setdefault(job_id, set()).add(waiter)
        self._someone_waits.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await waiter.woken.wait()
            return waiter.woken.is_set()
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[job_id]

    def subscribe(self, owner_id: str | None) -> Subscription:
        """Be told of every change of the owner's jobs (see jobs/changes.py) until
        `unsubscribe`."""
        subscription = self.feed.subscribe(owner_id)
        self._someone_waits.set()
        self.poke()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.feed.unsubscribe(subscription)

    async def run_forever(self) -> None:
        while True:
            if not self._waiters and not self.feed.active:
                self._someone_waits.clear()
                await self._someone_waits.wait()
            self._poked.clear()  # before the poll: a poke during it makes another
            try:
                await self._poll_once()
            except Exception:
                log.exception("job watch poll failed; trying again")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.fallback):
                    await self._poked.wait()
            await asyncio.sleep(self.gap)

    async def listen_forever(self, conninfo: str) -> None:
        """Poke on every NOTIFY of a job change (PostgreSQL), reconnecting when cut off."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    self.poke()  # changes while we were not listening
                    async for notification in connection.notifies():
                        # The payload is the job's id; an owner-wide stream wants them all.
                        if self.feed.active or notification.payload in self._waiters:
                            self.poke()
            except Exception as exc:
                log.warning("job change notifications lost (%s); listening again in 1 s", exc)
                await asyncio.sleep(1.0)

    async def _poll_once(self) -> None:
        ids = list(self._waiters)
        if not ids and not self.feed.active:
            return
        async with self.db.read() as session:
            await self.feed.poll(session)
            if not ids:
                return
            current = await JobRepository(session).updated_at_of(ids)
        for job_id in ids:
            now = current.get(job_id)
            for waiter in self._waiters.get(job_id, ()):
                if now != waiter.since:
                    waiter.woken.set()
