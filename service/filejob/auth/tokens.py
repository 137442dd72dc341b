"""API key tokens: random, shown once, stored only as a sha256.

A token carries 256 random bits, so a plain (unsalted, fast) hash is enough: there is nothing
to guess or brute-force, unlike a password; this is how GitHub and Stripe store theirs.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "fj_"


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def display_prefix(token: str) -> str:
    """Enough of a token to recognise it in `filejob keys list`, not enough to use it."""
    return token[: len(TOKEN_PREFIX) + 6]
