"""Running Alembic from code, and refusing to serve a database that is not at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from filejob.db.engine import Database

# Source checkouts keep alembic.ini and migrations/ next to the package.
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # service/filejob/db/migrations.py


class SchemaOutOfDate(RuntimeError):
    pass


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def ensure_schema_current(db: Database) -> None:
    head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.read_engine.connect() as connection:
        revision = await connection.run_sync(current)
    if revision != head:
        raise SchemaOutOfDate(
            f"database schema is at {revision or 'nothing'}, this filejob needs {head}: "
            "run `filejob db upgrade` first"
        )
