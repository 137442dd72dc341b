"""The SSRF guard of callback URLs: they may only reach public addresses.

The rules are the shared guard's (`filejob.untrusted.destinations`, the imports' too): a
callback URL is checked when the job is submitted (its syntax, and a host that is an address
literal or `localhost`), and at every delivery, where the host is resolved, each address
checked, and the connection then goes to the vetted address itself. Here its refusals become
the callback's errors: `invalid_callback_url` and `callback_url_forbidden`.
"""

from __future__ import annotations

import anyio  # noqa: F401 (tests replace `addresses.anyio.getaddrinfo`, the resolver used)

from filejob.errors import CallbackForbidden, InvalidCallbackUrl
from filejob.untrusted import destinations
from filejob.untrusted.destinations import (
    MAX_URL_LENGTH,
    Destination,
    DestinationForbidden,
    DestinationInvalid,
    embedded_ipv4,
    is_public,
)

__all__ = [
    "MAX_URL_LENGTH",
    "CallbackTarget",
    "embedded_ipv4",
    "is_public",
    "normalise_host",
    "parse_callback_url",
    "resolve_public",
]

NAME = "callback_url"

# A vetted callback URL (see `Destination`).
CallbackTarget = Destination


def parse_callback_url(raw: str, *, allow_private: bool) -> CallbackTarget:
    """Validate a callback URL's form and normalise its host; refuse a host that is plainly
    not public (by its normalised name, or an address literal in any of its spellings)."""
    try:
        return destinations.parse_destination(raw, allow_private=allow_private, name=NAME)
    except DestinationInvalid as exc:
        raise InvalidCallbackUrl(str(exc)) from exc
    except DestinationForbidden as exc:
        raise CallbackForbidden(str(exc)) from exc


def normalise_host(host: str) -> str:
    """The ASCII name `host` is looked up as (`destinations.normalise_host`)."""
    try:
        return destinations.normalise_host(host, name=NAME)
    except DestinationInvalid as exc:
        raise InvalidCallbackUrl(str(exc)) from exc


async def resolve_public(target: CallbackTarget, *, allow_private: bool) -> str:
    """An address to connect to for `target`; every address the name resolves to must be
    public (unless `allow_private`). A name that does not resolve is refused too."""
    try:
        return await destinations.resolve_public(target, allow_private=allow_private)
    except DestinationForbidden as exc:
        raise CallbackForbidden(str(exc)) from exc
