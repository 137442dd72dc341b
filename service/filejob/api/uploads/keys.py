"""The `Idempotency-Key` request header (draft-ietf-httpapi-idempotency-key-header): read,
checked, and claimed before the body is read (see jobs/idempotency.py for what a claim is)."""

from __future__ import annotations

import re

import anyio
from fastapi import Request

from filejob.auth.principal import Principal
from filejob.errors import InvalidIdempotencyKey
from filejob.jobs.idempotency import MAX_KEY_LENGTH, Claim

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"  # on the answer to a repeat: it made nothing new
# Seconds past the body deadline that storing and committing an upload may take: a claim older
# than the deadline plus this was left by a request that died (with its server).
COMMIT_GRACE = 300.0

_VISIBLE = re.compile(r"[\x20-\x7e]+")


def key_of(request: Request) -> str | None:
    """The request's key, or None without one. The draft makes it an RFC 8941 string
    (`"abc"`); the bare form most clients send (`abc`) is taken too, as the same key."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidIdempotencyKey("Send one Idempotency-Key, not several.")
    key = values[0].strip(" \t")
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = re.sub(r"\\([\\\"])", r"\1", key[1:-1])
    if not key:
        raise InvalidIdempotencyKey("The Idempotency-Key is empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"The Idempotency-Key has {len(key)} characters; at most {MAX_KEY_LENGTH} are kept."
        )
    if not _VISIBLE.fullmatch(key):
        raise InvalidIdempotencyKey("The Idempotency-Key must be printable ASCII.")
    return key


async def claim_key(request: Request, caller: Principal) -> Claim | None:
    """Claim the request's key for `caller` (None without a key); see jobs/idempotency.py."""
    key = key_of(request)
    if key is None:
        return None
    services = request.app.state.services
    policy = request.app.state.upload_policy
    return await services.jobs.idempotency.claim(
        caller.owner_id,
        key,
        ttl=services.settings.idempotency_ttl,
        abandoned_after=policy.body_deadline + COMMIT_GRACE,
    )


async def release_key(request: Request, claim: Claim) -> None:
    """Give up `claim` after its request failed; shielded, so a cancelled request still does
    (else its key would wait to be taken over as abandoned)."""
    with anyio.CancelScope(shield=True):
        await request.app.state.services.jobs.idempotency.release(claim)
