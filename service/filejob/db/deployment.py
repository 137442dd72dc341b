"""What every process of one deployment must agree on, kept in its database (`deployment`).

- **How jobs are run.** A server with `FILEJOB_EXECUTOR=inprocess` on a database whose jobs
  `filejob worker` processes run would resume, and run a second time, the jobs those workers
  hold. The mode is recorded by `filejob db upgrade` (or by the first start), and a process
  whose setting disagrees refuses to start. Switching is the operator's act: `filejob db
  upgrade` with the new setting, refused while a process of the old mode is still running.
- **The secret that signs result links**, when `FILEJOB_SECRET_KEY` is not set: generated
  once, so a link made by one server verifies on every other one, and after a restart.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import String, Text, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.engine import Database
from filejob.db.orm import Base, UTCDateTime, utcnow

EXECUTOR = "executor"
LINK_SECRET = "link_secret"

# The PostgreSQL advisory lock an in-process server holds while it runs jobs
# (service/filejob/jobs/executors/ownership.py): "filejob" in ASCII.
ADVISORY_KEY = 0x66696C656A6F62

# A procrastinate worker that beat within this many seconds is alive (it beats every 10 s at
# most, see service/filejob/worker.py's Liveness).
LIVE_WORKER_SECONDS = 30


class DeploymentFact(Base):
    __tablename__ = "deployment"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RefusedToStart(RuntimeError):
    """A reason not to start, said to the operator in one line (exit code 2)."""


class DeploymentMismatch(RefusedToStart):
    """This process's settings contradict what the deployment's database records."""


async def _get_or_create(session: AsyncSession, name: str, value: str) -> str:
    """The recorded value of `name`, recording `value` first if there is none. Two processes
    starting together agree: the loser of the insert reads the winner's value."""
    current = await session.get(DeploymentFact, name)
    if current is not None:
        return current.value
    try:
        async with session.begin_nested():
            session.add(DeploymentFact(name=name, value=value, set_at=utcnow()))
    except IntegrityError:
        current = await session.scalar(select(DeploymentFact).where(DeploymentFact.name == name))
        assert current is not None
        return current.value
    return value


async def check_executor(db: Database, executor: str) -> None:
    """Refuse to run with an executor other than the one this database records (recording
    this one if none is recorded yet)."""
    async with db.write() as session:
        recorded = await _get_or_create(session, EXECUTOR, executor)
    if recorded != executor:
        raise DeploymentMismatch(
            f"this database's jobs are run by FILEJOB_EXECUTOR={recorded} (recorded by "
            f"`filejob db upgrade`), but this process has FILEJOB_EXECUTOR={executor}. Give "
            f"every process FILEJOB_EXECUTOR={recorded}; to change how the deployment runs "
            "jobs, stop every server and worker, then run `filejob db upgrade` with the new "
            "FILEJOB_EXECUTOR"
        )


async def recorded_executor(db: Database) -> str | None:
    """The executor this database records; None if none is (or it predates the record)."""
    try:
        async with db.read() as session:
            fact = await session.get(DeploymentFact, EXECUTOR)
    except DBAPIError:  # no `deployment` table yet: `filejob db upgrade` makes it
        return None
    return fact.value if fact is not None else None


async def record_executor(db: Database, executor: str) -> str | None:
    """Make `executor` the deployment's mode (`filejob db upgrade`); the previous mode if it
    changed. Refused while a process of the previous mode runs jobs: a live procrastinate
    worker when moving to `inprocess`, a live in-process server when moving away from it."""
    async with db.write() as session:
        recorded = await _get_or_create(session, EXECUTOR, executor)
        if recorded == executor:
            return None
        if recorded == "procrastinate" and await _live_workers(session):
            raise DeploymentMismatch(
                "procrastinate workers are still running on this database: stop every "
                "`filejob worker` (they hand their jobs back) before switching to "
                f"FILEJOB_EXECUTOR={executor}"
            )
        if recorded == "inprocess" and await _inprocess_server_running(session):
            raise DeploymentMismatch(
                "an in-process `filejob serve` is still running jobs on this database: stop "
                f"it before switching to FILEJOB_EXECUTOR={executor}"
            )
        fact = await session.get(DeploymentFact, EXECUTOR)
        assert fact is not None
        fact.value, fact.set_at = executor, utcnow()
    return recorded


async def _live_workers(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - make_interval(secs => :secs)"
            ),
            {"secs": LIVE_WORKER_SECONDS},
        )
        or 0
    )


async def _inprocess_server_running(session: AsyncSession) -> bool:
    """Whether an in-process server holds the database's executor lock (PostgreSQL: an
    advisory lock, see `filejob.jobs.executors.ownership`); SQLite cannot move to workers."""
    taken = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY}
    )
    return not taken


async def link_secret(db: Database) -> bytes:
    """The deployment's link-signing secret, generated on first use."""
    async with db.write() as session:
        return (await _get_or_create(session, LINK_SECRET, secrets.token_urlsafe(32))).encode()
