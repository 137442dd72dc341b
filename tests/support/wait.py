"""Polling with a bound: the one way tests wait for something that happens elsewhere (a server,
a worker, a thread). A wait that runs out fails the test with an AssertionError."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 30,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call `predicate` every `interval` seconds until it returns something true, and return
    that; fail after `timeout` seconds. Exceptions from `predicate` propagate at once."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"{_name(predicate)} not reached in {timeout} s")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Awaitable[T | None]],
    timeout: float = 30,  # noqa: ASYNC109 (the same bound as wait_until's, not a cancel scope)
    interval: float = 0.02,
    message: str = "",
) -> T:
    """`wait_until` for the event loop, with a coroutine function as `predicate`; the whole
    wait (a hanging `predicate` included) is bounded by `timeout`."""
    with anyio.move_on_after(timeout):
        while True:
            result = await predicate()
            if result:
                return result
            await anyio.sleep(interval)
    raise AssertionError(message or f"{_name(predicate)} not reached in {timeout} s")


def _name(predicate: Callable[..., object]) -> str:
    return getattr(predicate, "__name__", "condition")
