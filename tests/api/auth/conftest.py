"""An app with FILEJOB_AUTH=required, and clients that act for one API key each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.auth import SECRET, KeyClient, tenant
from tests.support.settings import PROFILES


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET}


@pytest.fixture
async def key_client(app: FastAPI) -> AsyncIterator[KeyClient]:
    """`await key_client(name, **limits)`: a new key, and a client that sends it."""
    clients: list[httpx.AsyncClient] = []

    async def make(name: str = "alice", **limits: Any) -> httpx.AsyncClient:
        client = await tenant(app, name, **limits)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Every test here runs on each deployment profile (tests/conftest.py)."""
    return request.param
