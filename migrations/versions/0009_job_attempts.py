"""job_attempts: each attempt of a job, from its claim to how it ended

One row per attempt (`GET /v1/jobs/{id}/attempts`, the job's timeline): opened in the
transaction that claims the job, closed in the one that settles it, deleted with its job
(ON DELETE CASCADE; SQLite enforces it with `PRAGMA foreign_keys=ON`, db/engine.py). Jobs that
ran before this revision have no history: their attempts were never recorded one by one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the model's types at this revision (see 0001).
_ts = sa.DateTime(timezone=True)
_outcome = sa.Enum(
    "succeeded",
    "failed",
    "retrying",
    "timed_out",
    "cancelled",
    "interrupted",
    "crashed",
    name="attemptoutcome",
    native_enum=False,
    length=16,
)


def upgrade() -> None:
    op.create_table(
        "job_attempts",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_at", _ts, nullable=False),
        sa.Column("ended_at", _ts, nullable=True),
        sa.Column("outcome", _outcome, nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "number"),
    )


def downgrade() -> None:
    op.drop_table("job_attempts")
