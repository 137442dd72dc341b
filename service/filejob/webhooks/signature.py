"""`Filejob-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256 of "<t>.<body>" with the key's secret.

The timestamp is signed with the body, so a receiver that also refuses old timestamps (and
remembers the `Filejob-Delivery` ids it has seen) cannot be fed a replayed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Filejob-Signature"
DEFAULT_TOLERANCE = 300  # seconds


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `header` signs `body` with `secret` and is at most `tolerance` seconds old."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []) if v.isascii())
