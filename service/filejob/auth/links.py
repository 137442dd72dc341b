"""Signed, expiring result links: HMAC-SHA256 over method, path and expiry.

A link is a capability: whoever holds it may download that one result until it expires, with
no API key. Several secrets may be configured for rotation; the first signs, all verify.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass

from filejob.errors import InvalidSignature, LinkExpired
from filejob.untrusted.boundary import parse_count

# Expiry times are rounded up to this many seconds, so that a job's JSON (which carries a
# link) stays byte-identical, and its ETag stable, between two polls.
EXPIRY_GRANULARITY = 300


def result_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/result"


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires: int  # unix seconds


class LinkSigner:
    def __init__(self, secrets: list[bytes], default_ttl: int, max_ttl: int) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed to sign links")
        self._secrets = secrets
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl

    def _signature(self, secret: bytes, method: str, path: str, expires: int) -> str:
        message = f"{method}\n{path}\n{expires}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    def result_link(
        self, job_id: str, ttl: int | None = None, now: float | None = None
    ) -> SignedLink:
        now = time.time() if now is None else now
        if ttl is None:  # the job JSON's link: rounded, see EXPIRY_GRANULARITY
            expires = math.ceil((now + self.default_ttl) / EXPIRY_GRANULARITY)
            expires *= EXPIRY_GRANULARITY
        else:
            expires = math.ceil(now + ttl)
        path = result_path(job_id)
        sig = self._signature(self._secrets[0], "GET", path, expires)
        return SignedLink(f"{path}?expires={expires}&sig={sig}", expires)

    def verify(self, job_id: str, expires: str, sig: str, now: float | None = None) -> None:
        """Raise unless `sig` is a valid signature of the result link of `job_id` that has
        not expired. HEAD is allowed wherever GET is."""
        when = parse_count(expires)
        if when is None or len(expires) > 12:
            raise InvalidSignature("The link's expiry is malformed.")
        path = result_path(job_id)
        valid = False
        for secret in self._secrets:  # no early exit: the same work whichever secret matches
            expected = self._signature(secret, "GET", path, when)
            valid |= hmac.compare_digest(expected.encode(), sig.encode("utf-8", "replace"))
        if not valid:
            raise InvalidSignature("The link's signature is not valid.")
        if when < (time.time() if now is None else now):
            raise LinkExpired("The link has expired; ask for a new one.")
