"""Changes of many jobs at once: what owner-wide live streams (`GET /v1/events`) wait on.

A stream subscribes for one owner. One `ChangeFeed` per process reads, in one indexed query per
poll, the (id, owner, updated_at) of the jobs changed lately, and hands each subscriber the
changes of its owner's jobs. `JobWatcher` (watch.py) runs the polls, when poked, as it does
for single jobs.

Why a window and not "after the newest change seen": a writer takes `updated_at` before it
commits, so a change can become visible after a newer one was read (two runner slots, a worker
on another host, a submit waiting for its group commit). Each poll therefore reads again the
last `near` seconds before the newest change seen, and about once a second the last `far`
seconds; what was handed on already (`_seen`) is not handed on twice. A change that becomes
visible more than `far` seconds after its `updated_at` (or a writer whose clock is that far
behind) is missed; its job's next change is not. A writer whose clock runs ahead must not
drag that window into the future, where every correctly stamped change falls below it: the
newest change seen counts as no later than this process's clock (plus `AHEAD`). A change
stamped in the future is read and handed on all the same (it is above the window's start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from filejob.db.orm import utcnow
from filejob.errors import InvalidEventCursor
from filejob.jobs.model import Job
from filejob.jobs.repository import POLL_COLUMNS, owned_by

NEAR = 0.25  # seconds each poll reads before the newest change seen
FAR = 10.0  # seconds the deep poll reads back; also how far a resumed stream looks back
DEEP_EVERY = 1.0  # seconds between two deep polls
AHEAD = 0.1  # seconds a writer's clock may run ahead of ours and still move windows, cursors

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_CURSOR = (datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) // _MICROSECOND
_AHEAD = timedelta(seconds=AHEAD)


ChangedRow = Row[str, str | None, datetime]  # a job's id, owner and `updated_at`


def encode_cursor(moment: datetime) -> str:
    """An owner stream's resume cursor: microseconds since the epoch, exact."""
    return str((moment - _EPOCH) // _MICROSECOND)


def decode_cursor(cursor: str) -> datetime:
    """The moment `encode_cursor` wrote; `InvalidEventCursor` for anything else."""
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
        raise InvalidEventCursor("Last-Event-ID (or since) is not a cursor of this stream.")
    micros = int(cursor)
    if micros > _MAX_CURSOR:
        raise InvalidEventCursor("Last-Event-ID (or since) is not a cursor of this stream.")
    return _EPOCH + micros * _MICROSECOND


def at_most_now(moment: datetime) -> datetime:
    """`moment`, but no later than this process's clock (plus `AHEAD`): what a window's start
    or a cursor may move to, whatever a writer's clock stamped."""
    return min(moment, utcnow() + _AHEAD)


class Subscription:
    """One owner stream's inbox: the jobs changed since it last looked, newest version each."""

    def __init__(self, owner_id: str | None) -> None:
        self.owner_id = owner_id
        self.pending: dict[str, datetime] = {}
        self.woken = asyncio.Event()

    def put(self, job_id: str, updated_at: datetime) -> None:
        known = self.pending.get(job_id)
        if known is None or updated_at > known:
            self.pending[job_id] = updated_at
        self.woken.set()

    def take(self) -> dict[str, datetime]:
        pending, self.pending = self.pending, {}
        self.woken.clear()
        return pending


class ChangeFeed:
    def __init__(
        self, *, near: float = NEAR, far: float = FAR, deep_every: float = DEEP_EVERY
    ) -> None:
        self.near = timedelta(seconds=near)
        self.far = timedelta(seconds=far)
        self.deep_every = deep_every
        self._subscribers: dict[str | None, set[Subscription]] = {}
        self._newest: datetime | None = None  # the newest `updated_at` read so far
        self._started = False  # whether `_newest` was read since someone subscribed
        self._seen: dict[str, datetime] = {}  # each job's version handed on, within `far`
        self._deep_at = float("-inf")

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, owner_id: str | None) -> Subscription:
        subscription = Subscription(owner_id)
        self._subscribers.setdefault(owner_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.owner_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.owner_id]
        if not self._subscribers:  # idle: the next subscriber starts from the newest change
            self._started, self._newest, self._seen = False, None, {}
            self._deep_at = float("-inf")

    async def poll(self, session: AsyncSession) -> None:
        """Read what changed lately and hand it to the subscribers of its owner."""
        if not self._subscribers:
            return
        if not self._started:
            newest = await newest_change(session)
            self._newest = None if newest is None else at_most_now(newest)
            self._started = True
        clock = asyncio.get_running_loop().time()
        deep = clock - self._deep_at >= self.deep_every
        floor = None
        if self._newest is not None:
            floor = self._newest - (self.far if deep else self.near)
        rows = await changed_after(session, floor)
        if not self._subscribers:  # the last one left during the read
            return
        self._hand_on(rows)
        if deep:
            self._deep_at = clock
            self._forget_older_than_far()

    def _hand_on(self, rows: Iterable[ChangedRow]) -> None:
        latest = utcnow() + _AHEAD  # `at_most_now`, once for all the rows
        for job_id, owner_id, updated_at in rows:
            if self._newest is None or updated_at > self._newest:
                self._newest = min(updated_at, latest)
            subscribers = self._subscribers.get(owner_id)
            if not subscribers or self._seen.get(job_id) == updated_at:
                continue  # nobody watches its owner, or it was handed on already
            self._seen[job_id] = updated_at
            for subscription in subscribers:
                subscription.put(job_id, updated_at)

    def _forget_older_than_far(self) -> None:
        if self._newest is None:
            return
        oldest = self._newest - self.far
        self._seen = {job: at for job, at in self._seen.items() if at > oldest}


# -- the queries (each a range scan of ix_jobs_updated_at or ix_jobs_owner_updated) ----------


async def newest_change(session: AsyncSession) -> datetime | None:
    """When any job last changed; None: there are none."""
    return await session.scalar(select(func.max(Job.updated_at)))


async def owner_newest_change(session: AsyncSession, owner_id: str | None) -> datetime | None:
    """When the owner's jobs last changed; None: there are none."""
    return await session.scalar(select(func.max(Job.updated_at)).where(owned_by(owner_id)))


async def changed_after(session: AsyncSession, floor: datetime | None) -> Sequence[ChangedRow]:
    """(id, owner_id, updated_at) of every job changed after `floor` (None: of every job)."""
    query = select(Job.id, Job.owner_id, Job.updated_at)
    if floor is not None:
        query = query.where(Job.updated_at > floor)
    return (await session.execute(query)).all()


_ROW_COLUMNS = [Job.seq, *(getattr(Job, name) for name in POLL_COLUMNS)]


async def owner_jobs_after(
    session: AsyncSession,
    owner_id: str | None,
    after: tuple[datetime, int],
    limit: int,
) -> list[dict[str, Any]]:
    """The owner's jobs changed after `after` (an `updated_at`, then a `seq` among jobs
    changed at that very moment), oldest change first, as `POLL_COLUMNS` plus `seq`."""
    moment, seq = after
    later = or_(Job.updated_at > moment, and_(Job.updated_at == moment, Job.seq > seq))
    query = (
        select(*_ROW_COLUMNS)
        .where(owned_by(owner_id), later)
        .order_by(Job.updated_at, Job.seq)
        .limit(limit)
    )
    return [row._asdict() for row in (await session.execute(query)).all()]


async def owner_jobs(
    session: AsyncSession, owner_id: str | None, job_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """These jobs, those the owner owns and that still exist, oldest change first."""
    query = (
        select(*_ROW_COLUMNS)
        .where(Job.id.in_(job_ids), owned_by(owner_id))
        .order_by(Job.updated_at, Job.seq)
    )
    return [row._asdict() for row in (await session.execute(query)).all()]
