"""owner_changes: indexes for reading which jobs changed lately

`GET /v1/events` streams every change of an owner's jobs. Each server's poller reads the jobs
changed in the last seconds (`ix_jobs_updated_at`), and each stream reads its owner's newest
change and, after a reconnect, the owner's jobs changed since its cursor
(`ix_jobs_owner_updated`). Both are range scans on an index instead of scans of the table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_updated_at", "jobs", ["updated_at"])
    op.create_index("ix_jobs_owner_updated", "jobs", ["owner_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_updated", table_name="jobs")
    op.drop_index("ix_jobs_updated_at", table_name="jobs")
