"""keys, owners, webhooks: api_keys table; jobs.owner_id and callback delivery columns

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("token_prefix", sa.String(16), nullable=False),
        sa.Column("webhook_secret", sa.String(64), nullable=False),
        sa.Column("max_active_jobs", sa.Integer(), nullable=True),
        sa.Column("max_storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_state", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("callback_next_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("callback_last_result", sa.String(200), nullable=True))
        batch.add_column(
            sa.Column("callback_delivered_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.create_index("ix_jobs_owner_seq", ["owner_id", "seq"])
        batch.create_index("ix_jobs_owner_status", ["owner_id", "status"])
        batch.create_index("ix_jobs_callback_due", ["callback_state", "callback_next_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_callback_due")
        batch.drop_index("ix_jobs_owner_status")
        batch.drop_index("ix_jobs_owner_seq")
        for column in (
            "callback_delivered_at",
            "callback_last_result",
            "callback_next_at",
            "callback_attempts",
            "callback_state",
            "callback_url",
            "owner_id",
        ):
            batch.drop_column(column)
    op.drop_table("api_keys")
