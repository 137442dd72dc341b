"""/healthz and /readyz, on both profiles."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.storage import stored


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_ready_when_everything_works(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert checks == {"database": "ok", "storage": "ok", "free_space": "ok", "executor": "ok"}
    assert not [key for key in await stored(app) if key.startswith("readyz/")]  # probe removed


def _broken_database(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.asynccontextmanager
    async def unreachable() -> AsyncIterator[Any]:
        raise ConnectionRefusedError("database unreachable")
        yield

    monkeypatch.setattr(app.state.services.readiness.db, "read", unreachable)


def _broken_storage(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    async def read_only(key: str) -> Any:
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(app.state.services.readiness.storage, "create", read_only)


def _full_disk(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.state.services.readiness, "min_free_bytes", 2**62)


def _stopped_executor(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.state.services.readiness.executor, "running", lambda: False)


def _draining(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.state, "draining", True)


@pytest.mark.parametrize(
    ("breakage", "failing", "says"),
    [
        (_broken_database, "database", "unreachable"),
        (_broken_storage, "storage", "Read-only"),
        (_full_disk, "free_space", "FILEJOB_MIN_FREE_BYTES"),
        (_stopped_executor, "executor", "not running"),
        (_draining, "draining", "shutting down"),
    ],
    ids=["database", "storage", "free-space", "executor", "draining"],
)
async def test_not_ready_names_the_failing_check(
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    breakage: Any,
    failing: str,
    says: str,
) -> None:
    breakage(app, monkeypatch)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready" and body["detail"].startswith(f"{failing}: ")
    assert says in body["checks"][failing]
    assert [name for name, outcome in body["checks"].items() if outcome != "ok"] == [failing]
