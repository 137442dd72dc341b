"""When the client tries a request again, and how long it waits first.

Tried again: a transport failure (the connection refused, cut or silent past the timeout) and
the answers that mean "not now": 408 (the body stalled), 409 (an `Idempotency-Key` still in
flight, or a tus offset the server has moved past: the caller asks for the offset first),
423 (another request is writing the upload), 429, 500, 502, 503, 504, and 400
`upload_interrupted` (a newer request took a stalled one over). Anything else is the server's
answer, given up on at once.

The waits grow exponentially (0.5 s, 1 s, 2 s ... up to 30 s, each one a random 50 to 100 % of
that, so that clients cut together do not come back together), never shorter than the
server's `Retry-After`; a wait ends early with `Aborted` at Ctrl+C. After `retries` failures in a
row the last one is raised; a caller that made progress since calls `reset`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from filejob.client.errors import Aborted, ApiError

T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 409, 423, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is waited this long, then tried


def transient(exc: BaseException) -> bool:
    """Whether the same request may well succeed a little later."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, ApiError):
        return exc.status in RETRY_STATUSES or exc.code == "upload_interrupted"
    return False


@dataclass
class Backoff:
    """The waits between tries of one piece of work (one upload, one submit)."""

    retries: int = 8
    first: float = 0.5
    cap: float = 30.0
    failures: int = 0

    def reset(self) -> None:
        self.failures = 0

    def delay(self, exc: BaseException) -> float:
        """The wait before the next try, after `exc`."""
        grown = min(self.cap, self.first * 2 ** max(0, self.failures - 1))
        wait = grown * random.uniform(0.5, 1.0)
        told = exc.retry_after if isinstance(exc, ApiError) else None
        return max(wait, min(told, MAX_RETRY_AFTER)) if told is not None else wait

    def wait_after(self, exc: BaseException, abort: threading.Event | None) -> None:
        """Wait before trying again after `exc`; raise it if it is not transient or the tries
        are spent (`retries` of them), and `Aborted` if `abort` is set meanwhile."""
        self.failures += 1
        if not transient(exc) or self.failures > self.retries:
            raise exc
        pause = self.delay(exc)
        if abort is None:
            threading.Event().wait(pause)
        elif abort.wait(pause) or abort.is_set():
            raise Aborted("interrupted while waiting to try again")

    def call(self, work: Callable[[], T], abort: threading.Event | None) -> T:
        """`work()`, tried again after each transient failure while tries remain."""
        while True:
            if abort is not None and abort.is_set():
                raise Aborted("interrupted")
            try:
                return work()
            except Aborted:
                raise
            except Exception as exc:
                self.wait_after(exc, abort)
