"""Alembic environment: URL from filejob's Settings; migrations run on the async engine."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from filejob.auth.model import ApiKey
from filejob.config import Settings
from filejob.db.engine import Database
from filejob.db.orm import Base
from filejob.jobs.attempts import JobAttempt
from filejob.jobs.idempotency import IdempotencyKey
from filejob.jobs.model import Job
from filejob.resumable.model import ResumableUpload

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
assert {
    ApiKey.__tablename__,
    Job.__tablename__,
    JobAttempt.__tablename__,
    IdempotencyKey.__tablename__,
    ResumableUpload.__tablename__,
} <= set(target_metadata.tables)


def _url() -> str:
    return config.attributes.get("database_url") or Settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # A batch migration rebuilds a table by dropping the old one; with foreign keys on,
        # that drop would cascade to the rows that point at it (job_attempts). Set before the
        # transaction begins (SQLite ignores it inside one); the connection is disposed after.
        connection.connection.cursor().execute("PRAGMA foreign_keys=OFF")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()


async def run_migrations_online() -> None:
    db = Database(_url())
    try:
        async with db.write_engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await db.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
