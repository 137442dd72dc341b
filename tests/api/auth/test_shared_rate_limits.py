"""FILEJOB_RATE_LIMIT_STORAGE: API servers that share a Redis enforce one limit per key
between them; without it each counts alone; with it unreachable, requests still pass."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from filejob.app import create_app
from filejob.auth.ratelimit import RateLimiter
from filejob.config import Settings
from tests.support.ports import free_port
from tests.support.processors import test_registry

# The machine's Redis (see .ci/run); each test's counters are keyed by its own new API key.
REDIS = os.environ.get("FILEJOB_TEST_REDIS", "redis://127.0.0.1:6379/0")

Servers = Callable[..., Awaitable[tuple[httpx.AsyncClient, httpx.AsyncClient]]]


@pytest.fixture
def profile() -> str:
    # Several API servers on one database: PostgreSQL, S3 and procrastinate's workers (none
    # is started here: listing jobs needs none).
    return "distributed"


@pytest.fixture
async def servers(settings: Settings) -> AsyncIterator[Servers]:
    """`await servers(**settings)`: two apps on one database (as two API servers behind a
    load balancer), and a client of each acting for one new key limited to 5 a minute."""
    stack = AsyncExitStack()
    keys: list[str] = []

    async def start(**overrides: Any) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        both = settings.model_copy(update=overrides)  # auth required (tests/api/auth/conftest.py)
        apps = [create_app(both, registry=test_registry()) for _ in range(2)]
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        key, token = await apps[0].state.services.auth.keys.create("alice", rate_limit=5)
        keys.append(key.id)
        first, second = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://filejob.test",
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            for app in apps
        ]
        return first, second

    try:
        yield start
    finally:
        await stack.aclose()
        await forget_counts(keys)


async def forget_counts(owner_ids: list[str]) -> None:
    client = redis.Redis.from_url(REDIS)
    try:
        for owner_id in owner_ids:
            async for name in client.scan_iter(match=f"*{owner_id}*"):
                await client.delete(name)
    finally:
        await client.aclose()


async def test_servers_sharing_a_redis_enforce_one_limit(servers: Servers) -> None:
    first, second = await servers(rate_limit_storage=REDIS)
    statuses = [(await client.get("/v1/jobs")).status_code for client in [first, second] * 2]
    statuses.append((await first.get("/v1/jobs")).status_code)
    assert statuses == [200] * 5  # 3 on one server, 2 on the other: 5 in all
    for client in (second, first):
        refused = await client.get("/v1/jobs")
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_without_shared_storage_each_server_counts_alone(servers: Servers) -> None:
    first, second = await servers()
    assert [(await first.get("/v1/jobs")).status_code for _ in range(5)] == [200] * 5
    assert (await first.get("/v1/jobs")).status_code == 429
    # The other server has seen none of them: the key gets 5 more there (N servers, N x 5).
    assert [(await second.get("/v1/jobs")).status_code for _ in range(5)] == [200] * 5
    assert (await second.get("/v1/jobs")).status_code == 429


async def test_an_unreachable_redis_falls_back_to_counting_in_memory(
    servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # a port nothing listens on
    first, second = await servers(rate_limit_storage=nobody)
    with caplog.at_level(logging.WARNING, logger="filejob"):
        statuses = [(await first.get("/v1/jobs")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]  # no 500s, and the limit still holds per server
        assert len(outage_warnings(caplog)) == 1  # once per outage, not once per request
        assert (await second.get("/v1/jobs")).status_code == 200
        assert len(outage_warnings(caplog)) == 2  # each server tells of it


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "rate-limit storage failed" in r.getMessage()]


@pytest.mark.parametrize("uri", ["nosuch://127.0.0.1:1", "memcached://127.0.0.1:11211"])
def test_a_storage_that_cannot_be_used_is_refused_at_start(uri: str) -> None:
    """An unknown scheme, or one whose client is not installed: the server does not start
    (rather than failing every request, or silently counting alone)."""
    with pytest.raises(ValueError, match="FILEJOB_RATE_LIMIT_STORAGE"):
        RateLimiter(uri)
