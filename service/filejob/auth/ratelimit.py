"""Per-key request rate limits, on the `limits` library's sliding-window counter.

The counts live where FILEJOB_RATE_LIMIT_STORAGE says: empty, in this process's memory (each
API server then enforces the limit on its own share of the traffic, so N servers allow N times
the limit); a `limits` storage URI such as redis://HOST:6379/0, in a store every server shares.

A shared store that fails does not fail the request: this process counts in its own memory
until the store answers again (warned once per outage). The rate limit is a brake on a
runaway client, not what keeps data safe (keys, quotas and admission are checked in the
database either way), so a Redis outage should not become an outage of the whole API; for as
long as it lasts, the limit is enforced per server, as without the setting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

log = logging.getLogger("filejob.ratelimit")

KEY_PREFIX = "filejob"  # names the counts in a Redis that other programs may share
STORAGE_TIMEOUT = 1.0  # seconds one count may wait for the shared store before it is skipped
RETRY_STORAGE_AFTER = 5.0  # seconds between tries of a store that failed


def shared_storage(uri: str) -> Storage:
    """The async `limits` storage for a URI. `redis://` is accepted as well as `limits`' own
    `async+redis://`; Redis is spoken through redis-py (the client this project installs)."""
    scheme = uri.partition("://")[0]
    if not uri.startswith("async+"):
        uri = f"async+{uri}"
    options: dict[str, str | bool] = {"wrap_exceptions": True}
    if scheme.removeprefix("async+").startswith("redis"):
        options |= {"implementation": "redispy", "key_prefix": KEY_PREFIX}
    try:
        storage = storage_from_string(uri, **options)
    except ConfigurationError as exc:
        raise ValueError(f"FILEJOB_RATE_LIMIT_STORAGE={scheme}://...: {exc}") from None
    if not isinstance(storage, Storage):
        raise ValueError(f"FILEJOB_RATE_LIMIT_STORAGE={scheme}://... is not an async storage")
    return storage


class RateLimiter:
    """Counts requests per key in `storage_uri` (empty: this process's memory)."""

    def __init__(self, storage_uri: str = "") -> None:
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared = (
            SlidingWindowCounterRateLimiter(shared_storage(storage_uri)) if storage_uri else None
        )
        self._retry_shared_at: float | None = None  # monotonic; set while the store fails

    async def hit(self, who: str, per_minute: int) -> float | None:
        """Count one request; None if allowed, else the seconds until one would be."""
        item = RateLimitItemPerMinute(per_minute)
        if self._shared is not None and self._shared_due():
            try:
                async with asyncio.timeout(STORAGE_TIMEOUT):
                    wait = await _hit(self._shared, item, who)
            except (StorageError, TimeoutError) as exc:
                self._shared_failed(exc)
            else:
                self._shared_answered()
                return wait
        return await _hit(self._local, item, who)

    def _shared_due(self) -> bool:
        return self._retry_shared_at is None or time.monotonic() >= self._retry_shared_at

    def _shared_failed(self, exc: Exception) -> None:
        if self._retry_shared_at is None:
            log.warning(
                "rate-limit storage failed (%s): counting in this process's memory until it "
                "answers again (each API server enforces the limit on its own meanwhile)",
                str(exc) or type(exc).__name__,
            )
        self._retry_shared_at = time.monotonic() + RETRY_STORAGE_AFTER

    def _shared_answered(self) -> None:
        if self._retry_shared_at is not None:
            log.info("rate-limit storage answers again: the limit is shared again")
            self._retry_shared_at = None


async def _hit(
    limiter: SlidingWindowCounterRateLimiter, item: RateLimitItemPerMinute, who: str
) -> float | None:
    if await limiter.hit(item, who):
        return None
    stats = await limiter.get_window_stats(item, who)
    return max(1.0, math.ceil(stats.reset_time - time.time()))
