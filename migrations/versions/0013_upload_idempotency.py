"""idempotency_keys.upload_id: an Idempotency-Key of POST /v1/uploads names the upload it made

A nullable column, NULL for keys of POST /v1/jobs, deleted with its upload's row (ON DELETE
CASCADE); indexed for that cascade. See service/filejob/jobs/idempotency.py.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-16
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A batch: SQLite cannot add a foreign key to an existing table in place; the table is
    # small (keys live a day) and nothing cascades from it.
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("upload_id", sa.String(length=32), nullable=True))
        batch.create_foreign_key(
            "fk_idempotency_keys_upload_id",
            "resumable_uploads",
            ["upload_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_idempotency_keys_upload_id", ["upload_id"])


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_index("ix_idempotency_keys_upload_id")
        batch.drop_constraint("fk_idempotency_keys_upload_id", type_="foreignkey")
        batch.drop_column("upload_id")
