from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.jobs.executors.inprocess import InProcessExecutor
from service.migrations import upgrade
from tests.support import test_registry


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "workers": 2,
        "progress_interval": 0.02,
        "sweep_interval": 3600,
        "fsync": False,
        "min_free_bytes": 0,  # CI disks can be small; admission control has its own tests
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its `app`."""
    return {}


@pytest.fixture
def settings(data_dir: Path, settings_overrides: dict[str, Any]) -> Settings:
    settings = make_settings(data_dir, **settings_overrides)
    upgrade(settings.database_url)
    return settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        yield client


@pytest.fixture
def drain(app: FastAPI) -> Callable[[], Any]:
    """Run every submitted job to its end (the executor's burst mode), then return."""
    executor = app.state.services.executor
    assert isinstance(executor, InProcessExecutor)
    return executor.drain
