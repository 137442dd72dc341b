"""The HTTP client of requests sent to a vetted address (`Destination.pinned`): imports'
fetches and webhooks' deliveries.

Such a request names the address in its URL and the host in its `Host` header and TLS SNI, so
httpx's pool would know its connection by (scheme, address, port) alone: a kept-alive
connection whose certificate was verified for `a.example` could then carry a request for
`b.example` served at the same address. So no connection is kept once its response is read;
each request opens its own, for its own host.
"""

from __future__ import annotations

import httpx

# Not one connection kept idle: each request gets a fresh one (see the module doc).
ONE_CONNECTION_PER_REQUEST = httpx.Limits(max_keepalive_connections=0)


def pinned_client(*, timeout: float, headers: dict[str, str]) -> httpx.AsyncClient:
    """A client for pinned requests: `timeout` bounds connecting and each wait for bytes; no
    redirect followed (each hop is judged first, or is a failure); no proxy from the
    environment (the address is vetted here); no connection reused. Close it when done."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=ONE_CONNECTION_PER_REQUEST,
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )
