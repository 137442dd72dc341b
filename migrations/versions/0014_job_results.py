"""job_results: every result of a job (a processor may emit several), and jobs.results

One row per stored result: its public id, its place in the job's list, its name, type, size,
sha256, its storage key (None once removed) and whether a download of it was sent whole
(delete-after-download waits for all of them). Deleted with its job (ON DELETE CASCADE;
SQLite enforces it with `PRAGMA foreign_keys=ON`, db/engine.py). `jobs.results`: the same
list as the API shows it (JSON), so that a poll still reads one row. The job row's result_*
columns keep describing the first result.

Jobs that already have a result get its row and their one-entry list here, so that every
stored result, old or new, is listed, counted and removed alike. See
service/filejob/jobs/result_rows.py.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-17
"""

import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500

# Frozen copies of the tables as this revision leaves them, for the backfill.
_jobs = sa.table(
    "jobs",
    sa.column("seq", sa.BigInteger()),
    sa.column("id", sa.String()),
    sa.column("result_key", sa.String()),
    sa.column("result_filename", sa.String()),
    sa.column("result_content_type", sa.String()),
    sa.column("result_size", sa.BigInteger()),
    sa.column("result_sha256", sa.String()),
    sa.column("results", sa.JSON()),
)
_results = sa.table(
    "job_results",
    sa.column("id", sa.String()),
    sa.column("job_id", sa.String()),
    sa.column("position", sa.Integer()),
    sa.column("step", sa.String()),
    sa.column("filename", sa.String()),
    sa.column("content_type", sa.String()),
    sa.column("size", sa.BigInteger()),
    sa.column("sha256", sa.String()),
    sa.column("key", sa.String()),
    sa.column("downloaded", sa.Boolean()),
)


def upgrade() -> None:
    op.create_table(
        "job_results",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=True),
        sa.Column("downloaded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_job_results_job_position", "job_results", ["job_id", "position"], unique=True
    )
    # Nullable, no default: SQLite adds it in place (no rebuild of `jobs`).
    op.add_column("jobs", sa.Column("results", sa.JSON(), nullable=True))
    _backfill(op.get_bind())


def _backfill(connection: sa.Connection) -> None:
    """A row and a one-entry list for each job that has a result, in batches."""
    after = 0
    while True:
        rows = connection.execute(
            sa.select(_jobs)
            .where(_jobs.c.result_key.is_not(None), _jobs.c.seq > after)
            .order_by(_jobs.c.seq)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            entry = _entry(row)
            connection.execute(sa.insert(_results).values(**entry, key=row.result_key))
            listed = {name: entry[name] for name in _LISTED}
            connection.execute(
                sa.update(_jobs).where(_jobs.c.id == row.id).values(results=[listed])
            )
        after = rows[-1].seq


_LISTED = ("id", "step", "filename", "content_type", "size", "sha256")


def _entry(row: Any) -> dict[str, Any]:
    while (result_id := secrets.token_urlsafe(9)).startswith("-"):
        pass
    return {
        "id": result_id,
        "job_id": row.id,
        "position": 0,
        "step": None,
        "filename": row.result_filename or "result",
        "content_type": row.result_content_type or "application/octet-stream",
        "size": row.result_size or 0,
        "sha256": row.result_sha256 or "",
        "downloaded": False,
    }


def downgrade() -> None:
    op.drop_index("ix_job_results_job_position", table_name="job_results")
    op.drop_table("job_results")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("results")
