"""Alembic owns the schema: head matches the models, downgrade works, stale schemas refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from filejob.app import create_app
from filejob.auth.model import ApiKey
from filejob.db.migrations import SchemaOutOfDate, alembic_config, upgrade
from filejob.jobs.model import Base
from tests.support.settings import make_settings


def test_head_matches_models_and_downgrades(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings.database_url)
    sync_url = settings.database_url.replace("+aiosqlite", "")
    with create_engine(sync_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    assert ApiKey.__tablename__ in Base.metadata.tables
    command.downgrade(alembic_config(settings.database_url), "base")
    upgrade(settings.database_url)


async def test_server_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with pytest.raises(SchemaOutOfDate, match="filejob db upgrade"):
        async with app.router.lifespan_context(app):
            pass
