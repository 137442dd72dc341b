"""A real webhook receiver, a client for a key `alice`, and deliveries kept on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.auth import tenant
from tests.support.settings import PROFILES
from tests.support.webhooks import Receiver, receiving


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as receiver:
        yield receiver


@pytest.fixture
async def alice(app: FastAPI) -> AsyncIterator[Any]:
    """A client acting for a new API key `alice` (its key row as `.key`)."""
    async with await tenant(app, "alice") as client:
        yield client


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """Every test here runs on each deployment profile (tests/conftest.py)."""
    return request.param


@pytest.fixture
def loopback_only(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries may dial only 127.0.0.1: where a test fakes DNS answers, a guard that let one
    through fails the attempt ("error: AssertionError") instead of reaching the network."""
    client = app.state.webhooks._client
    send = client.send

    async def loopback_send(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            raise AssertionError(f"a delivery dialled {request.url.host}")
        return await send(request, **kwargs)

    monkeypatch.setattr(client, "send", loopback_send)
