"""The job path's hot statements, each built once and run with bound values.

Building `update(Job).where(...).values(...)` for every transition, and computing its cache
key, cost more CPU than running it (hundreds of microseconds with the callback CASEs). A
statement built once per shape keeps its compiled form, and its cache key, in SQLAlchemy's
caches; each run only binds the values. The repository (jobs/repository.py) runs them.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, case, func, insert, or_, select, update

from filejob.jobs.attempts import AttemptError, AttemptOutcome, JobAttempt
from filejob.jobs.model import Job
from filejob.jobs.states import CallbackState, JobStatus

# Final states that tell a job's callback (expiry is housekeeping, not news).
NOTIFIED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

INSERT = insert(Job)  # run on a connection: plain Core, no ORM bulk machinery


def _new_row_columns() -> tuple[tuple[str, Any], ...]:
    """Every column a new row is given (all but `seq`, which the database numbers), with
    the column's default where the object leaves it unset, as the ORM's flush would."""
    columns = []
    for column in Job.__table__.columns:
        if column.name == "seq":
            continue
        default = column.default
        assert default is None or default.is_scalar, f"{column.name}: only plain defaults"
        columns.append((column.name, None if default is None else default.arg))
    return tuple(columns)


_NEW_ROW = _new_row_columns()


def new_row(job: Job) -> dict[str, Any]:
    """`job`'s columns for `INSERT` (the same keys for every job: one cached statement)."""
    row = {}
    for name, default in _NEW_ROW:
        value = getattr(job, name)
        row[name] = default if value is None else value
    return row


def _status_in(sources: frozenset[JobStatus]) -> ColumnElement[bool]:
    # Equalities, not IN: an IN list is re-expanded at every run of a cached statement.
    ordered = sorted(sources)
    return or_(*(Job.status == source for source in ordered))


@functools.cache
def transition(
    target: JobStatus,
    sources: frozenset[JobStatus],
    fenced: bool,
    names: tuple[str, ...],
    attempts_step: int = 0,
) -> Update:
    """UPDATE a job (`:job_id`) in one of `sources` (with `fenced`, only while `:attempt` is
    its current attempt) to `target`, at `:now`, setting each of `names` to `:v_<name>`, and
    `attempts` to `attempts + attempts_step` when that is not 0. A final state also sets
    `finished_at` (unless given) and, for those that tell, makes the callback due."""
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in names}
    now = bindparam("now", type_=Job.updated_at.type)
    if attempts_step:
        values["attempts"] = Job.attempts + attempts_step
    if target.is_final and target is not JobStatus.EXPIRED and "finished_at" not in names:
        values["finished_at"] = now
    if target in NOTIFIED:  # due for its webhook, if it has one (see webhooks/dispatcher)
        has_callback = Job.callback_url.is_not(None)
        values["callback_state"] = case((has_callback, CallbackState.PENDING), else_=None)
        values["callback_next_at"] = case((has_callback, now), else_=None)
    fence = [Job.attempts == bindparam("attempt")] if fenced else []
    return (
        update(Job)
        .where(Job.id == bindparam("job_id"), _status_in(sources), *fence)
        .values(status=target, updated_at=now, **values)
    )


# One job by id; populate_existing: a row the session loaded before an UPDATE is read afresh.
GET = select(Job).where(Job.id == bindparam("job_id")).execution_options(populate_existing=True)

PROGRESS = (
    update(Job)
    .where(
        Job.id == bindparam("job_id"),
        Job.status == JobStatus.RUNNING,
        Job.attempts == bindparam("attempt"),
    )
    .values(progress=bindparam("progress"), updated_at=bindparam("now"))
)


# -- job_attempts (jobs/attempts.py): one statement in the claim's transaction, one in the
# settling write's, each only when the job's own UPDATE moved it. (Their parameters are not
# named after columns: an INSERT or UPDATE keeps those names for itself.)

_attempt_job = bindparam("attempt_job", type_=JobAttempt.job_id.type)

# The next attempt, numbered after the job's last one (not from `jobs.attempts`, which a
# graceful shutdown gives back). No two claims of one job run at once: the claim's UPDATE
# holds the row (PostgreSQL) or the database (SQLite) until the transaction ends.
OPEN_ATTEMPT = insert(JobAttempt).from_select(
    ["job_id", "number", "started_at", "worker"],
    select(
        _attempt_job,
        func.coalesce(func.max(JobAttempt.number), 0) + 1,
        bindparam("now", type_=JobAttempt.started_at.type),
        bindparam("v_worker", type_=JobAttempt.worker.type),
    ).where(JobAttempt.job_id == _attempt_job),
)

# The job's open attempt (at most one: every move out of `running` closes it).
CLOSE_ATTEMPT = (
    update(JobAttempt)
    .where(JobAttempt.job_id == bindparam("attempt_job"), JobAttempt.ended_at.is_(None))
    .values(
        ended_at=bindparam("now"),
        outcome=bindparam("v_outcome"),
        error_code=bindparam("v_error_code"),
        error_message=bindparam("v_error_message"),
    )
)


def opened(job_id: str, worker: str | None, now: datetime) -> dict[str, Any]:
    """`OPEN_ATTEMPT`'s values."""
    return {"attempt_job": job_id, "now": now, "v_worker": worker}


def closed(
    job_id: str, outcome: AttemptOutcome, error: AttemptError, now: datetime
) -> dict[str, Any]:
    """`CLOSE_ATTEMPT`'s values."""
    code, message = error
    return {
        "attempt_job": job_id,
        "now": now,
        "v_outcome": outcome,
        "v_error_code": code,
        "v_error_message": message,
    }
