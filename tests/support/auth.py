"""Apps with FILEJOB_AUTH=required: their secrets, and clients that act for one API key each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

SECRET = "test-secret-0123456789-abcdefghijklmnop"
OLD_SECRET = "old-secret-0123456789-abcdefghijklmnopq"

# `await key_client(name, **limits)` (the fixture of tests/api/auth/conftest.py).
KeyClient = Callable[..., Awaitable[httpx.AsyncClient]]


async def tenant(app: FastAPI, name: str, **limits: Any) -> httpx.AsyncClient:
    """A client acting for a new API key `name` with `limits` (its key row as `.key`); close
    it after use."""
    key, token = await app.state.services.auth.keys.create(name, **limits)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://filejob.test",
        headers={"Authorization": f"Bearer {token}"},
    )
    client.key = key  # type: ignore[attr-defined]
    return client
