"""Every query against `jobs`. Callers own the transaction (see `Database.read/write`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.base import Executable

from filejob.jobs import statements
from filejob.jobs.attempts import OUTCOME_OF, PROCESS_DIED, AttemptError, AttemptOutcome, error_in
from filejob.jobs.model import Job, utcnow
from filejob.jobs.statements import new_row
from filejob.jobs.states import JobStatus, check_transition, sources_of
from filejob.jobs.storage_keys import input_key, job_of, result_key

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def owned_by(owner_id: str | None) -> ColumnElement[bool]:
    """Rows of one owner; None is the anonymous owner (auth off), not "anyone"."""
    return Job.owner_id == owner_id if owner_id is not None else Job.owner_id.is_(None)


# What a poll shows of a job (`api.schemas.job_json`), with `updated_at` for long polls.
POLL_COLUMNS = (
    "id", "status", "processor", "params", "progress", "attempts", "max_attempts",
    "timeout_seconds", "next_attempt_at", "created_at", "updated_at", "started_at",
    "finished_at", "delete_after_download", "error_code", "error_message", "input_filename",
    "input_content_type", "input_size", "input_sha256", "result_key", "result_filename",
    "result_content_type", "result_size", "result_sha256", "callback_url", "callback_state",
    "callback_attempts", "callback_last_result", "callback_delivered_at", "input_key",
    "source_url", "fetched_bytes", "source_size",
)  # fmt: skip


class AnyOwner:
    """Whoever owns the job: for the holder of a verified signed link, which names one job."""


ANY_OWNER = AnyOwner()
PollOwner = str | None | AnyOwner  # an owner id, None for the anonymous owner, or ANY_OWNER


def poll_kind(owner: PollOwner) -> str:
    if owner is None:
        return "anonymous"
    return "any" if isinstance(owner, AnyOwner) else "owner"


def poll_params(job_id: str, owner: PollOwner) -> dict[str, str]:
    return {"job_id": job_id, "owner": owner} if isinstance(owner, str) else {"job_id": job_id}


def poll_query(kind: str) -> Select[Any]:
    """Built once per `poll_kind`: a constant statement's compiled form stays in SQLAlchemy's
    cache."""
    table = Job.__table__
    where = [table.c.id == bindparam("job_id")]
    if kind == "anonymous":
        where.append(table.c.owner_id.is_(None))
    elif kind == "owner":
        where.append(table.c.owner_id == bindparam("owner"))
    columns = [table.c[name] for name in POLL_COLUMNS]
    return select(*columns).where(*where)


POLL_KINDS = ("anonymous", "owner", "any")
_POLL = {kind: poll_query(kind) for kind in POLL_KINDS}


async def poll_row(
    connection: AsyncConnection, job_id: str, owner: PollOwner
) -> dict[str, Any] | None:
    """`JobRepository.get_owned`'s job as `POLL_COLUMNS` by name (typed as `Job`'s
    attributes): the poll's read, on a bare connection, with no session, identity map or ORM
    object (each costs more than the query)."""
    row = (await connection.execute(_POLL[poll_kind(owner)], poll_params(job_id, owner))).first()
    return None if row is None else row._asdict()


# An import's fetch progress, while its attempt is the running one.
_FETCHED = (
    update(Job)
    .where(
        Job.id == bindparam("job_id"),
        Job.status == JobStatus.RUNNING,
        Job.attempts == bindparam("attempt"),
    )
    .values(
        fetched_bytes=bindparam("fetched"),
        source_size=bindparam("size"),
        updated_at=bindparam("now"),
    )
)


def _stored_bytes() -> ColumnElement[int]:
    """Bytes a row's files take in storage (a file counts while its key is set)."""
    input_bytes = case((Job.input_key.is_not(None), Job.input_size), else_=0)
    result_bytes = case((Job.result_key.is_not(None), func.coalesce(Job.result_size, 0)), else_=0)
    return input_bytes + result_bytes


def _count_of(*statuses: JobStatus) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((Job.status.in_(statuses), 1), else_=0)), 0)


def _sum_of(value: ColumnElement[int]) -> ColumnElement[int]:
    return func.coalesce(func.sum(value), 0)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _core(
        self, statement: Executable, params: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> CursorResult[Any]:
        """Run a statement that loads no ORM objects on the session's connection (in its
        transaction): SQLAlchemy Core only. Through `session.execute`, the ORM's statement
        handling (compile state, bulk UPDATE bookkeeping) costs more than the statement; no
        object of the session is synchronised (as with `synchronize_session=False`)."""
        connection = await self.session.connection()
        return await connection.execute(statement, params)

    async def add(self, job: Job) -> Job:
        """Insert `job`'s row (see `add_all`)."""
        await self.add_all([job])
        return job

    async def add_all(self, jobs: Sequence[Job]) -> None:
        """Insert the rows of new jobs, as they are, in one statement (one executemany).

        A Core insert of plain values: the ORM's flush of a new object (unit of work, identity
        map, RETURNING its `seq`) cost a submit more CPU than the rest of its transaction,
        and nobody reads the `seq` of a job just made. The objects stay transient."""
        await self._core(statements.INSERT, [new_row(job) for job in jobs])

    async def get(self, job_id: str) -> Job | None:
        """Any owner's job: for the server's own work (runner, sweeper), never for callers."""
        return await self.session.scalar(statements.GET, {"job_id": job_id})

    async def get_owned(self, job_id: str, owner_id: str | None) -> Job | None:
        """The job if `owner_id` owns it. One query either way, so a job that exists but is
        someone else's looks (and takes) the same as one that does not."""
        return await self.session.scalar(select(Job).where(Job.id == job_id, owned_by(owner_id)))

    async def lock_owner(self, owner_id: str | None) -> None:
        """Serialise this transaction with every other one that locks the same owner, until
        it ends: quota checks then see each other's jobs. SQLite needs nothing (one writer at
        a time, from BEGIN IMMEDIATE); PostgreSQL takes a transaction-scoped advisory lock."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                select(func.pg_advisory_xact_lock(func.hashtext(owner_id or "anonymous")))
            )

    async def usage(self, owner_id: str | None) -> tuple[int, int]:
        """The owner's active (queued or running) jobs and the bytes their stored files take."""
        query = select(_count_of(*ACTIVE), _sum_of(_stored_bytes())).where(owned_by(owner_id))
        active, stored = tuple((await self._core(query)).one())
        return int(active), int(stored)

    async def totals(self) -> tuple[int, int, int]:
        """Every owner's jobs queued, jobs running and stored bytes (for metrics)."""
        row = (
            await self.session.execute(
                select(
                    _count_of(JobStatus.QUEUED),
                    _count_of(JobStatus.RUNNING),
                    _sum_of(_stored_bytes()),
                )
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def updated_at_of(self, job_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of these jobs last changed (missing ones are left out)."""
        rows = await self.session.execute(select(Job.id, Job.updated_at).where(Job.id.in_(job_ids)))
        return {job_id: updated for job_id, updated in rows.all()}

    async def list(
        self,
        *,
        owner_id: str | None,
        limit: int,
        before_seq: int | None = None,
        status: JobStatus | None = None,
        processor: str | None = None,
    ) -> Sequence[Job]:
        """Newest first; `before_seq` continues after the last row of the previous page."""
        query = select(Job).where(owned_by(owner_id)).order_by(Job.seq.desc()).limit(limit)
        if before_seq is not None:
            query = query.where(Job.seq < before_seq)
        if status is not None:
            query = query.where(Job.status == status)
        if processor is not None:
            query = query.where(Job.processor == processor)
        return (await self.session.scalars(query)).all()

    async def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        expected: Iterable[JobStatus] | None = None,
        attempt: int | None = None,
        **values: Any,
    ) -> bool:
        """Move the job to `target` if it is in one of `expected` (default: every legal source).

        A compare-and-set in one UPDATE, so two racing writers (a cancel and a finishing
        worker) cannot both win; with `attempt`, only while that attempt is the current one.
        `values`: other columns to set, as plain values. Returns whether this call made the
        move. A move out of `running` also ends the open attempt (`OUTCOME_OF` the target).
        """
        sources = sources_of(target) if expected is None else frozenset(expected)
        now = utcnow()
        moved = await self._move(job_id, target, sources, attempt, values, now=now)
        if moved and JobStatus.RUNNING in sources and target is not JobStatus.RUNNING:
            await self._close(job_id, OUTCOME_OF[target], error_in(values), now)
        return moved

    async def _move(
        self,
        job_id: str,
        target: JobStatus,
        expected: Iterable[JobStatus] | None,
        attempt: int | None,
        values: dict[str, Any],
        attempts_step: int = 0,
        now: datetime | None = None,
    ) -> bool:
        """`transition` of the job's row alone, also adding `attempts_step` to the attempts
        count."""
        sources = sources_of(target) if expected is None else frozenset(expected)
        for source in sources:
            check_transition(source, target)
        names = tuple(sorted(values))
        statement = statements.transition(
            target, sources, attempt is not None, names, attempts_step
        )
        params = {f"v_{name}": values[name] for name in names}
        params.update(job_id=job_id, now=now or utcnow(), attempt=attempt)
        result = await self._core(statement, params)
        return result.rowcount == 1

    async def start(self, job_id: str, worker: str | None = None) -> bool:
        """queued -> running, counting the attempt (the last attempt's error stays visible),
        and opening its entry in `job_attempts` (`worker`: the process that runs it)."""
        now = utcnow()
        values = {"started_at": now, "progress": 0.0, "next_attempt_at": None}
        queued = [JobStatus.QUEUED]
        if not await self._move(job_id, JobStatus.RUNNING, queued, None, values, 1, now):
            return False
        await self._core(statements.OPEN_ATTEMPT, statements.opened(job_id, worker, now))
        return True

    # The ends of an attempt. Each is fenced on `job.attempts` (the attempt as claimed): False,
    # and nothing written, unless the job is still running that attempt, so an attempt presumed
    # dead and retried elsewhere never overwrites the newer attempt's outcome. Each closes the
    # attempt's entry in `job_attempts` in the same transaction.

    async def _end_attempt(
        self,
        job: Job,
        target: JobStatus,
        outcome: AttemptOutcome,
        values: dict[str, Any],
        error: AttemptError | None = None,
        attempts_step: int = 0,
    ) -> bool:
        """`error`: the attempt's (code, message); by default, the one `values` gives the job."""
        now, running = utcnow(), [JobStatus.RUNNING]
        if not await self._move(job.id, target, running, job.attempts, values, attempts_step, now):
            return False
        await self._close(job.id, outcome, error or error_in(values), now)
        return True

    async def _close(
        self, job_id: str, outcome: AttemptOutcome, error: AttemptError, now: datetime
    ) -> None:
        """End the job's open attempt (there is at most one) as `outcome`."""
        await self._core(statements.CLOSE_ATTEMPT, statements.closed(job_id, outcome, error, now))

    async def succeed(
        self, job: Job, *, key: str, filename: str, content_type: str, size: int, sha256: str
    ) -> bool:
        """running -> succeeded, naming its result (already stored under `key`)."""
        values = {
            "error_code": None,
            "error_message": None,
            "progress": 1.0,
            "result_key": key,
            "result_filename": filename,
            "result_content_type": content_type,
            "result_size": size,
            "result_sha256": sha256,
        }
        return await self._end_attempt(job, JobStatus.SUCCEEDED, AttemptOutcome.SUCCEEDED, values)

    async def fail(
        self, job: Job, code: str, message: str, outcome: AttemptOutcome = AttemptOutcome.FAILED
    ) -> bool:
        """running -> failed, with the error a client is shown (`outcome`: the attempt's)."""
        values = {"error_code": code, "error_message": message}
        return await self._end_attempt(job, JobStatus.FAILED, outcome, values)

    async def retry_later(self, job: Job, code: str, message: str, due: datetime) -> bool:
        """running -> queued for another attempt at `due`, showing why this one failed."""
        values = {"error_code": code, "error_message": message, "next_attempt_at": due}
        return await self._end_attempt(job, JobStatus.QUEUED, AttemptOutcome.RETRYING, values)

    async def cancel(self, job: Job) -> bool:
        """running -> cancelled (the client asked, and the attempt stopped)."""
        values = {"error_code": None, "error_message": None}
        return await self._end_attempt(job, JobStatus.CANCELLED, AttemptOutcome.CANCELLED, values)

    async def put_back(self, job: Job) -> bool:
        """running -> queued, the attempt not counted: the server stopped it to shut down.
        The previous attempt's error, if any, stays."""
        interrupted = AttemptOutcome.INTERRUPTED
        return await self._end_attempt(job, JobStatus.QUEUED, interrupted, {}, attempts_step=-1)

    async def expire(self, job: Job) -> bool:
        """A finished job (as loaded) -> expired, its files no longer named (the caller
        deletes them)."""
        return await self.transition(
            job.id, JobStatus.EXPIRED, expected=[job.status], input_key=None, result_key=None
        )

    async def queued_without_queue_entry(self, limit: int) -> Sequence[Job]:
        """Queued jobs that no shared queue knows (accepted while the in-process executor was
        configured), oldest first; locked, skipping rows another transaction holds."""
        query = (
            select(Job)
            .where(Job.status == JobStatus.QUEUED, Job.queue_ref.is_(None))
            .order_by(Job.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def set_queue_ref(self, job_id: str, ref: int) -> None:
        await self._core(update(Job).where(Job.id == job_id).values(queue_ref=ref))

    async def requeue_interrupted(self, job: Job) -> bool:
        """A running attempt whose process died (or went silent): back to `queued`, True. One
        that has used up its attempts that way is a poison input (it killed or hung its process
        each time) and fails with `crashed` instead, False. Fenced on the attempt. The attempt
        ends `interrupted` (the job's last error stays) or `crashed`."""
        if job.attempts < job.max_attempts:
            interrupted = AttemptOutcome.INTERRUPTED
            await self._end_attempt(job, JobStatus.QUEUED, interrupted, {}, PROCESS_DIED)
            return True
        message = (
            f"The process running this job stopped, {job.attempts} time(s); it is not tried again."
        )
        values = {"error_code": "crashed", "error_message": message}
        await self._end_attempt(job, JobStatus.FAILED, AttemptOutcome.CRASHED, values)
        return False

    async def take_back(self, job_id: str) -> None:
        """A row its last run left `running` because that run could not record how it ended
        (the database failed it): treated as an interrupted attempt, like after a crash. Only
        for a caller that knows no run of the job is still going."""
        job = await self.get(job_id)
        if job is not None and job.status is JobStatus.RUNNING:
            await self.requeue_interrupted(job)

    async def set_progress(self, job_id: str, progress: float, attempt: int) -> None:
        """Record `attempt`'s progress while it is the running one (fenced as transitions)."""
        params = {"job_id": job_id, "attempt": attempt, "progress": progress, "now": utcnow()}
        await self._core(statements.PROGRESS, params)

    # -- an import's fetch (jobs/fetching.py), fenced on its attempt as progress is

    async def set_fetched(self, job_id: str, attempt: int, fetched: int, size: int | None) -> None:
        """Record how far `attempt`'s fetch has come (bytes, of the announced `size`)."""
        params = {"job_id": job_id, "attempt": attempt, "fetched": fetched, "size": size}
        await self._core(_FETCHED, {**params, "now": utcnow()})

    async def set_input(
        self,
        job: Job,
        *,
        key: str,
        filename: str,
        content_type: str,
        size: int,
        sha256: str,
        announced: int | None,
    ) -> bool:
        """Name the input `job`'s fetch stored under `key` (its origin `announced` a size, or
        not), while that attempt is the running one and no input is named yet; True if it
        did."""
        values = {
            "input_key": key,
            "input_filename": filename,
            "input_content_type": content_type,
            "input_size": size,
            "input_sha256": sha256,
            "fetched_bytes": size,
            "source_size": announced,
            "updated_at": utcnow(),
        }
        statement = (
            update(Job)
            .where(
                Job.id == job.id,
                Job.status == JobStatus.RUNNING,
                Job.attempts == job.attempts,
                Job.input_key.is_(None),
            )
            .values(**values)
        )
        return (await self._core(statement)).rowcount == 1

    async def delete(self, job_id: str) -> bool:
        result = await self.session.execute(delete(Job).where(Job.id == job_id))
        return result.rowcount == 1  # type: ignore[attr-defined]

    async def expirable(self, finished_before: datetime, limit: int = 500) -> Sequence[Job]:
        """Finished jobs whose files are due for removal."""
        query = (
            select(Job)
            .where(
                Job.status.in_([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]),
                Job.finished_at < finished_before,
            )
            .order_by(Job.finished_at)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def unfinished(self) -> Sequence[Job]:
        """Jobs a stopped process may have left behind, oldest first."""
        query = (
            select(Job)
            .where(Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
            .order_by(Job.seq)
        )
        return (await self.session.scalars(query)).all()

    async def queued_since(self, before: datetime, limit: int = 500) -> Sequence[Job]:
        """Queued jobs last changed before `before`, oldest first."""
        query = (
            select(Job)
            .where(Job.status == JobStatus.QUEUED, Job.updated_at < before)
            .order_by(Job.seq)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def referenced_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` that a job row points at, or that the job's running attempt
        is writing: a result is stored a moment before its row names it. One statement per
        batch, so that a row moving from one to the other meanwhile is seen as either."""
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            batch = set(wanted[start : start + 500])
            rows = await self.session.execute(
                select(Job.id, Job.status, Job.attempts, Job.input_key, Job.result_key).where(
                    Job.id.in_({job_id for key in batch if (job_id := job_of(key))})
                )
            )
            for job_id, status, attempts, *pointed in rows:
                if status is JobStatus.RUNNING:
                    # The input too: an import's fetch stores it a moment before naming it.
                    pointed += [result_key(job_id, attempts), input_key(job_id)]
                found.update(batch.intersection(pointed))
        return found
