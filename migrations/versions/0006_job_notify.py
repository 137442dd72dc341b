"""job_notify: on PostgreSQL, a NOTIFY on every change of a job row

API servers LISTEN to wake the clients watching a job (live events, long polls) at once,
whichever process changed it. SQLite needs nothing: one process owns an embedded database,
and it wakes its watchers itself.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "filejob_job_changed"  # service/filejob/jobs/watch.py listens on it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION filejob_job_changed() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('{CHANNEL}', OLD.id);
            ELSE
                PERFORM pg_notify('{CHANNEL}', NEW.id);
            END IF;
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        "CREATE TRIGGER filejob_job_changed AFTER UPDATE OR DELETE ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION filejob_job_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS filejob_job_changed ON jobs")
    op.execute("DROP FUNCTION IF EXISTS filejob_job_changed()")
