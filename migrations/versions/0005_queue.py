"""queue: procrastinate's schema (PostgreSQL only) and jobs.queue_ref

procrastinate's schema is applied from a copy frozen in migrations/sql/, so that this revision
means the same thing whatever procrastinate version is installed later; moving to a newer
procrastinate takes a new revision running its migration scripts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_SCHEMA = Path(__file__).parent.parent / "sql" / "procrastinate-3.10.0.sql"

# Everything the schema creates is named procrastinate_*; dropped in dependency order.
_DROP_PROCRASTINATE = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables
             WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.fn);
    END LOOP;
    FOR r IN SELECT t.typname FROM pg_type t
             JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
               AND t.typtype IN ('e', 'c') LOOP
        EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
    END LOOP;
END $$;
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        # The queue entry (procrastinate job id) of a job handed to a shared queue.
        batch.add_column(sa.Column("queue_ref", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # psycopg reads % as a placeholder marker even without parameters.
        bind.exec_driver_sql(PROCRASTINATE_SCHEMA.read_text().replace("%", "%%"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(_DROP_PROCRASTINATE.replace("%", "%%"))
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("queue_ref")
