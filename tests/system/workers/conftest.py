"""Fixtures for this directory: everything here is about procrastinate workers, so every
test runs on the distributed profile (PostgreSQL + S3 + procrastinate)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import procrastinate
import pytest

from filejob.config import Settings
from filejob.db.engine import conninfo


@pytest.fixture
def profile() -> str:
    return "distributed"


@pytest.fixture
async def queue_app(settings: Settings) -> AsyncIterator[procrastinate.App]:
    """procrastinate's own view of the test database (its job manager)."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings.database_url))
    )
    async with app.open_async():
        yield app
