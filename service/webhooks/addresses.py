"""The SSRF guard: callback URLs may only reach public addresses.

A URL is checked twice: when the job is submitted (its syntax, and a host that is an address
literal or `localhost`), and at every delivery, where the host is resolved and each address
checked, and the connection then goes to the vetted address itself, so a DNS answer that
changes in between (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import anyio

from service.errors import CallbackForbidden, InvalidCallbackUrl

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, CGNAT, reserved,
    multicast or unspecified (an IPv4-mapped IPv6 address is judged as its IPv4 self)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class CallbackTarget:
    url: SplitResult
    host: str
    port: int


def parse_callback_url(raw: str, *, allow_private: bool) -> CallbackTarget:
    """Validate a callback URL's form; refuse a host that is plainly not public."""
    if len(raw) > MAX_URL_LENGTH or any(ord(ch) < 33 or ord(ch) == 127 for ch in raw):
        raise InvalidCallbackUrl(
            f"callback_url must be at most {MAX_URL_LENGTH} characters, without spaces or "
            "control characters."
        )
    try:
        url = urlsplit(raw)
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidCallbackUrl(f"callback_url is not a valid URL: {exc}.") from exc
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidCallbackUrl("callback_url must be an absolute http:// or https:// URL.")
    if url.username or url.password:
        raise InvalidCallbackUrl("callback_url must not carry credentials.")
    host = url.hostname
    if not allow_private:
        if host == "localhost" or host.endswith(".localhost"):
            raise CallbackForbidden("callback_url points at this machine.")
        literal = _literal(host)
        if literal is not None and not is_public(literal):
            raise CallbackForbidden(f"callback_url points at a non-public address ({literal}).")
    return CallbackTarget(url, host, port)


async def resolve_public(target: CallbackTarget, *, allow_private: bool) -> str:
    """An address to connect to for `target`; every address the name resolves to must be
    public (unless `allow_private`), so one bad record cannot be picked by chance."""
    literal = _literal(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await anyio.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except OSError as exc:
            raise CallbackForbidden(f"{target.host} does not resolve: {exc}.") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise CallbackForbidden(f"{target.host} does not resolve.")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise CallbackForbidden(
                    f"{target.host} resolves to a non-public address ({address})."
                )
    return str(addresses[0])


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, including the shorthand forms (`127.1`,
    `2130706433`, `0x7f.0.0.1`) that the C resolver also takes as addresses."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
