"""The app under test on either deployment profile, and its backing services (fixtures only;
helpers live in tests/support/)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.app import create_app
from filejob.config import Settings
from filejob.db.migrations import upgrade
from filejob.jobs.executors.inprocess import InProcessExecutor
from tests.support import services
from tests.support.processors import test_registry
from tests.support.queue import run_queue_until_idle, running_worker
from tests.support.services import postgres_database, s3_settings
from tests.support.settings import make_settings


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its `app`."""
    return {}


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once per run; each test copies it (CREATE DATABASE ... TEMPLATE),
    which takes milliseconds where migrating takes a second."""
    with postgres_database() as url:
        yield url.rsplit("/", 1)[1]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with services.seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.fixture
def profile() -> str:
    """Which deployment profile a test runs on; directories whose tests must hold on every
    profile override this with `params=PROFILES` (tests/support/settings.py), as
    tests/api/endpoints/conftest.py does."""
    return "embedded"


@pytest.fixture
def profile_settings(request: pytest.FixtureRequest, profile: str) -> dict[str, Any]:
    """The storage half of a profile: each distributed test gets its own prefix."""
    if profile == "embedded":
        return {}
    return {
        **s3_settings(request.getfixturevalue("seaweedfs")),
        "executor": "procrastinate",
        "shutdown_grace": 1.0,  # a test's worker stops at once
    }


@pytest.fixture
def database_url(request: pytest.FixtureRequest, profile: str) -> Iterator[str]:
    """ "" (SQLite under the data dir) or a fresh PostgreSQL database, dropped afterwards."""
    if profile == "embedded":
        yield ""
        return
    with postgres_database(template=request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
def settings(
    data_dir: Path,
    settings_overrides: dict[str, Any],
    database_url: str,
    profile_settings: dict[str, Any],
) -> Settings:
    values = {"database_url": database_url, **profile_settings, **settings_overrides}
    settings = make_settings(data_dir, **values)
    if not database_url:
        upgrade(settings.database_url)
    return settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        if settings.executor == "procrastinate":
            async with running_worker(settings, test_registry()) as worker:
                app.state.test_worker = worker  # whose metrics count the jobs it ran
                yield app
        else:
            yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        yield client


@pytest.fixture
def run_until_idle(app: FastAPI) -> Callable[[], Any]:
    """Run every submitted job to its end (the executor's burst mode), then return."""
    executor = app.state.services.executor
    if isinstance(executor, InProcessExecutor):
        return executor.run_until_idle
    settings = app.state.services.settings
    return functools.partial(run_queue_until_idle, settings.database_url)
