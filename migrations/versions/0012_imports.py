"""imports: jobs whose input is fetched from a URL (`source_url`) by their first attempt

Four nullable columns on `jobs`, NULL for every job made by an upload: the source URL, the
owner's storage quota when the job was accepted (which bounds the fetch), and the fetch's
progress (bytes fetched, and the length the origin announced). See service/filejob/jobs/imports.py.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("source_url", "owner_quota_bytes", "fetched_bytes", "source_size")


def upgrade() -> None:
    # Nullable columns without defaults: SQLite adds them in place (no table rebuild, which
    # would run the ON DELETE CASCADE of job_attempts), PostgreSQL without rewriting rows.
    op.add_column("jobs", sa.Column("source_url", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("owner_quota_bytes", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("fetched_bytes", sa.BigInteger(), nullable=True))
    op.add_column("jobs", sa.Column("source_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
