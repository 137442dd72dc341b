"""Per-key request rate limits, on the `limits` library's sliding-window counter."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter


class RateLimiter:
    """Counts in this process's memory: with several API servers each enforces the limit on
    its own share of the traffic."""

    def __init__(self) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def hit(self, who: str, per_minute: int) -> float | None:
        """Count one request; None if allowed, else the seconds until one would be."""
        item = RateLimitItemPerMinute(per_minute)
        if await self._limiter.hit(item, who):
            return None
        stats = await self._limiter.get_window_stats(item, who)
        return max(1.0, math.ceil(stats.reset_time - time.time()))
