"""resumable_uploads: tus uploads in progress, their tombstones, and the finished ones' jobs

One row per upload at /v1/uploads/{id}: its owner, the offset acknowledged so far (durable),
its length (NULL while deferred), the job's fields from Upload-Metadata, when it expires, the
lease of the request writing it now (any API server), and, once complete, its job; for
concatenation, whether it is a partial or a final upload, and a final one's parts. Expired
uploads stay as tombstones (410) until a later sweep deletes them. No foreign key to `jobs`:
a deleted job leaves its upload's link answering 404, as the job does. See
service/filejob/resumable/.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the model's types at this revision (see 0001).
_ts = sa.DateTime(timezone=True)
_state = sa.Enum(
    "receiving", "complete", "expired", name="uploadstate", native_enum=False, length=16
)


def upgrade() -> None:
    op.create_table(
        "resumable_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=True),
        sa.Column("state", _state, nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("job_request", sa.JSON(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("upload_metadata", sa.Text(), nullable=True),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("updated_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("concat", sa.String(length=16), nullable=True),
        sa.Column("parts", sa.JSON(), nullable=True),
        sa.Column("lease_token", sa.String(length=128), nullable=True),
        sa.Column("lease_until", _ts, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_resumable_uploads_owner_state", "resumable_uploads", ["owner_id", "state"])
    op.create_index(
        "ix_resumable_uploads_state_expires", "resumable_uploads", ["state", "expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_resumable_uploads_state_expires", table_name="resumable_uploads")
    op.drop_index("ix_resumable_uploads_owner_state", table_name="resumable_uploads")
    op.drop_table("resumable_uploads")
