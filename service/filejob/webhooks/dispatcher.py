"""Webhook delivery: POST a final job's JSON to its `callback_url`, signed, with retries.

Delivery state lives on the job row (`JobRepository.transition` marks a callback pending
when the job becomes final; `CallbackRepository` does the rest), so a delivery survives a
restart and every attempt is visible on the job. Each attempt is claimed with a
compare-and-set, so two servers polling the same database never send the same attempt twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import httpx

from filejob.auth.repository import ApiKeyRepository
from filejob.db.engine import Database
from filejob.errors import FilejobError
from filejob.jobs.model import Job, utcnow
from filejob.jobs.states import CallbackState
from filejob.untrusted.connections import pinned_client
from filejob.webhooks.addresses import parse_callback_url, resolve_public
from filejob.webhooks.repository import CallbackRepository
from filejob.webhooks.signature import HEADER, sign

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 3600.0
PARALLEL_DELIVERIES = 8


@dataclass(frozen=True)
class WebhookPolicy:
    allow_private: bool = False
    timeout: float = 5.0
    max_attempts: int = 8
    retry_delay: float = 5.0
    anonymous_secret: str | None = None  # for jobs of the anonymous caller (auth off)


class _Refused(Exception):
    """A delivery that must not be retried (the target is not allowed)."""


class WebhookDispatcher:
    """`render` turns a job into the body to send: the API's job JSON, in practice."""

    def __init__(self, db: Database, render: Callable[[Job], bytes], policy: WebhookPolicy) -> None:
        self.db = db
        self.render = render
        self.policy = policy
        # A redirect could lead anywhere: it is not followed, and counts as a failure.
        self._client = pinned_client(
            timeout=policy.timeout, headers={"User-Agent": "filejob-webhooks/1"}
        )
        self._limiter = anyio.CapacityLimiter(PARALLEL_DELIVERIES)

    async def close(self) -> None:
        await self._client.aclose()

    async def run_forever(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:  # a database hiccup must not end deliveries for good
                log.exception("webhook pass failed")
            await asyncio.sleep(interval)

    async def deliver_due(self) -> int:
        """Make every attempt that is due now; return how many were made. Each delivery is
        claimed, attempted and recorded on its own: what one raises never touches another."""
        async with self.db.read() as session:
            due = await CallbackRepository(session).due(utcnow())
        made: list[str] = []
        async with anyio.create_task_group() as group:
            for job in due:
                group.start_soon(self._deliver, job, made)
        return len(made)

    async def _deliver(self, job: Job, made: list[str]) -> None:
        async with self._limiter:
            # Claimed only once a slot is free, so the lease covers the attempt, not the wait.
            lease = utcnow() + timedelta(seconds=self.policy.timeout * 2 + 30)
            try:
                assert job.callback_next_at is not None  # `due` selects on it
                async with self.db.write() as session:
                    claimed = await CallbackRepository(session).claim(
                        job.id, job.callback_next_at, lease
                    )
            except Exception:  # unclaimed, it stays due for the next pass
                log.exception("webhook %s: could not claim its attempt", job.id)
                return
            if not claimed:  # another pass or server took it
                return
            made.append(job.id)
            attempt = job.callback_attempts + 1
            delivered, outcome, final = await self._attempt(job, attempt)
            await self._record(job, attempt, delivered, outcome, final)

    async def _attempt(self, job: Job, attempt: int) -> tuple[bool, str, bool]:
        """(delivered, the outcome to record, whether it is final) of one attempt."""
        try:
            # The whole attempt, name lookup included, in twice the timeout: httpx's own
            # timeout bounds each read, and a receiver that trickles its reply would otherwise
            # hold the attempt (and this pass, and everyone's webhooks behind it) for ever.
            with anyio.fail_after(self.policy.timeout * 2):
                status = await self._post(job)
        except _Refused as exc:
            return False, f"refused: {exc}", True
        except (httpx.TimeoutException, TimeoutError):
            return False, "timeout", False
        except httpx.HTTPError as exc:
            return False, f"error: {type(exc).__name__}", False
        except Exception as exc:
            # A bug or a library's surprise: this delivery's failed attempt, retried like any
            # other (it may pass: a database read, an upgrade), never the end of the pass.
            log.exception("webhook %s attempt %d raised", job.id, attempt)
            return False, f"error: {type(exc).__name__}", False
        return 200 <= status < 300, str(status), False

    async def _record(
        self, job: Job, attempt: int, delivered: bool, outcome: str, final: bool
    ) -> None:
        values: dict[str, Any] = {
            "callback_attempts": attempt,
            "callback_last_result": outcome[:200],
        }
        if delivered:
            values.update(callback_state=CallbackState.DELIVERED, callback_delivered_at=utcnow())
        elif final or attempt >= self.policy.max_attempts:
            values.update(callback_state=CallbackState.FAILED, callback_next_at=None)
        else:
            delay = min(self.policy.retry_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
            delay *= random.uniform(0.9, 1.1)  # keeps a burst of retries from lining up
            values["callback_next_at"] = utcnow() + timedelta(seconds=delay)
        try:
            # An attempt made is recorded even if the server is stopping meanwhile.
            with anyio.CancelScope(shield=True):
                async with self.db.write() as session:
                    await CallbackRepository(session).record(job.id, **values)
        except Exception:  # the claim lapses and the attempt is made again
            log.exception("webhook %s attempt %d (%s) was not recorded", job.id, attempt, outcome)
            return
        log.info("webhook %s attempt %d: %s", job.id, attempt, outcome)

    async def _post(self, job: Job) -> int:
        assert job.callback_url is not None
        secret = await self._secret_of(job)
        try:
            target = parse_callback_url(job.callback_url, allow_private=self.policy.allow_private)
            address = await resolve_public(target, allow_private=self.policy.allow_private)
        except FilejobError as exc:  # an unencodable host too: it can never succeed
            raise _Refused(exc.detail) from exc
        body = self.render(job)
        # Connect to the vetted address itself; Host and TLS SNI name the normalised host.
        url, host, extensions = target.pinned(address)
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(secret, body, int(time.time())),
            "Filejob-Event": f"job.{job.status.value}",
            "Filejob-Delivery": job.id,  # the same on every retry: receivers dedupe on it
            **host,
        }
        request = self._client.build_request(
            "POST", url, content=body, headers=headers, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        await response.aclose()  # the status is all we need; never read a large reply
        return response.status_code

    async def _secret_of(self, job: Job) -> str:
        if job.owner_id is None:
            if not self.policy.anonymous_secret:
                raise _Refused("no signing secret (FILEJOB_WEBHOOK_SECRET) for anonymous jobs")
            return self.policy.anonymous_secret
        async with self.db.read() as session:
            key = await ApiKeyRepository(session).get(job.owner_id)
        if key is None:
            raise _Refused("the job's API key no longer exists")
        return key.webhook_secret
