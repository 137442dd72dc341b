"""Reuse by content never crosses owners: another API key's identical job is not reused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.reuse.test_reuse import post, succeeded_once
from tests.support.auth import SECRET, tenant
from tests.support.settings import PROFILES


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET}


@pytest.fixture
async def tenants(app: FastAPI) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [await tenant(app, "alice"), await tenant(app, "bob")]
    yield clients
    for one in clients:
        await one.aclose()


async def test_another_owners_job_is_never_reused(
    tenants: list[httpx.AsyncClient], run_until_idle: Callable[[], Any]
) -> None:
    alice, bob = tenants
    await succeeded_once(alice, run_until_idle)
    assert (await post(bob, reuse=True))["status"] == "queued"
    assert (await post(alice, reuse=True))["status"] == "succeeded"
