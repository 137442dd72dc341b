"""One owner-wide live stream (`GET /v1/events`): which of the owner's jobs changed, and how.

The stream subscribes to the process's `ChangeFeed` (through `JobWatcher`) before it reads
anything, so a change committed after its first read reaches it as a notice from the feed. It
remembers what it has shown of each job (its version, and a fingerprint of all but progress),
so a notice for a state already shown is dropped, and a change of progress alone is told as
`progress`. Delivery is at least once: a resumed stream shows again what changed in the last
`far` seconds before its cursor, and a job that changed again is shown in its newest state.
A new stream starts at the owner's newest change: its catch-up read sends the jobs changed
after that start (a change committed between its two reads, whose notice would otherwise be
dropped as already shown) and only notes the rest. Cursors never pass this process's clock
(`changes.at_most_now`), so one writer whose clock runs ahead cannot push them on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from filejob.jobs.changes import (
    FAR,
    Subscription,
    at_most_now,
    decode_cursor,
    encode_cursor,
    owner_jobs,
    owner_jobs_after,
    owner_newest_change,
)
from filejob.jobs.repository import POLL_COLUMNS
from filejob.jobs.watch import JobWatcher

PAGE = 200  # jobs read at a time when a resumed stream catches up
IDS_PER_READ = 500  # job ids in one IN list
_STATE_COLUMNS = tuple(name for name in POLL_COLUMNS if name not in ("progress", "updated_at"))
_EPOCH = decode_cursor("0")


@dataclass(frozen=True)
class Change:
    kind: Literal["status", "progress"]
    job: dict[str, Any]  # `repository.POLL_COLUMNS` by name (and `seq`)
    cursor: str  # where a client that saw this change resumes


@dataclass(frozen=True)
class _Shown:
    version: datetime
    state: int  # a fingerprint of every column but progress and updated_at
    progress: float
    final: bool


def _state_of(job: dict[str, Any]) -> int:
    return hash(repr(tuple(job[name] for name in _STATE_COLUMNS)))


class OwnerStream:
    def __init__(
        self,
        watcher: JobWatcher,
        owner_id: str | None,
        since: datetime | None,
        *,
        far: float = FAR,
    ) -> None:
        self.watcher = watcher
        self.owner_id = owner_id
        self.since = since  # None: a new stream, from the owner's newest change
        self.far = timedelta(seconds=far)
        self._subscription = Subscription(owner_id)  # the feed's, once entered
        self._shown: dict[str, _Shown] = {}
        self._start = _EPOCH  # where it starts (`begin`)
        self._cursor = _EPOCH  # the newest change shown (or, at first, where it starts)
        self._floor = _EPOCH  # changes at or before it are past: never shown (again)
        self._pruned_at = _EPOCH

    async def __aenter__(self) -> OwnerStream:
        """Subscribe: from now on the feed tells of every change of the owner's jobs."""
        self._subscription = self.watcher.subscribe(self.owner_id)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.watcher.unsubscribe(self._subscription)

    @property
    def cursor(self) -> str:
        return encode_cursor(self._cursor)

    async def begin(self) -> None:
        """Fix where the stream starts (`cursor`): the owner's newest change (0 if the owner
        has no jobs, never past this process's clock), or `since` if that is older."""
        async with self.watcher.db.read() as session:
            newest = await owner_newest_change(session, self.owner_id) or _EPOCH
        # A cursor past the newest change (jobs deleted since, or a bogus one) starts from it.
        start = at_most_now(newest if self.since is None else min(self.since, newest))
        self._start = self._cursor = start
        self._floor = self._pruned_at = start - self.far

    async def catch_up(self) -> AsyncIterator[Change]:
        """After `begin`: each job changed after the start, as a `status` change, oldest change
        first; resumed (`since`), each changed since `far` before it too. What a new stream
        does not send (changed at or before its start) is only noted."""
        after = (self._floor, 0)
        while True:
            async with self.watcher.db.read() as session:
                jobs = await owner_jobs_after(session, self.owner_id, after, PAGE)
            for job in jobs:
                # For a new stream, a job changed after its start changed after `begin` read
                # the start (or is stamped ahead of our clock): news to a client that lists
                # the jobs on `ready`, so it is sent, not only noted.
                fresh = self.since is not None or job["updated_at"] > self._start
                change = self._consider(job)
                if change is not None and fresh:
                    yield change
            if len(jobs) < PAGE:
                return
            after = (jobs[-1]["updated_at"], jobs[-1]["seq"])

    async def wait(self, within: float) -> bool:
        """Until the feed tells of a change of the owner's jobs (True), or `within` seconds."""
        woken = self._subscription.woken
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await woken.wait()
        return woken.is_set()

    async def changes(self) -> list[Change]:
        """What the feed told of since the last call, in each job's newest state, oldest change
        first (nothing for a state already shown)."""
        ids = [
            job_id
            for job_id, version in self._subscription.take().items()
            if version > self._floor and self._is_news(job_id, version)
        ]
        jobs = []
        for start in range(0, len(ids), IDS_PER_READ):
            async with self.watcher.db.read() as session:
                jobs += await owner_jobs(session, self.owner_id, ids[start : start + IDS_PER_READ])
        jobs.sort(key=lambda job: (job["updated_at"], job["seq"]))
        changes = [change for job in jobs if (change := self._consider(job)) is not None]
        self._prune()
        return changes

    def _is_news(self, job_id: str, version: datetime) -> bool:
        shown = self._shown.get(job_id)
        return shown is None or version > shown.version

    def _consider(self, job: dict[str, Any]) -> Change | None:
        """Note `job`'s state; the change to tell, if it is news."""
        version = job["updated_at"]
        if not self._is_news(job["id"], version):
            return None
        shown = self._shown.get(job["id"])
        state = _state_of(job)
        self._shown[job["id"]] = _Shown(version, state, job["progress"], job["status"].is_final)
        # Not past our clock: a row stamped by a clock that runs ahead must not carry the
        # cursor (and with it `_floor`, which drops older notices) into the future.
        self._cursor = max(self._cursor, at_most_now(version))
        if shown is None or shown.state != state:
            return Change("status", job, self.cursor)
        if shown.progress != job["progress"]:
            return Change("progress", job, self.cursor)
        return None  # only `updated_at` moved

    def _prune(self) -> None:
        """Forget final jobs whose last change left the window (the feed will not tell of it
        again); unfinished ones are kept, so their next progress is told as `progress`."""
        floor = self._cursor - self.far
        if floor - self._pruned_at < self.far:
            return
        self._floor = self._pruned_at = floor
        self._shown = {
            job_id: shown
            for job_id, shown in self._shown.items()
            if not shown.final or shown.version > floor
        }
