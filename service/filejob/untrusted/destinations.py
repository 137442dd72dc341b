"""Where a client's URL leads (a webhook's callback, an import's source): the SSRF guard.

A URL is checked twice: when the client sends it (its syntax, and a host that is an address
literal or `localhost`), and each time the server goes there, where the host is resolved and
each address checked, and the connection then goes to the vetted address itself
(`Destination.pinned`), so a DNS answer that changes in between (DNS rebinding) cannot
redirect it.

The host is judged as it will be looked up, never as it was spelled: UTS #46 maps look-alikes
(`ⓛⓞⓒⓐⓛⓗⓞⓢⓣ`, full-width digits, ideographic full stops) to the name they spell, a
fully qualified name loses its trailing dot, and what is left is the ASCII name that DNS, the
`Host` header and TLS SNI all use. A host that has no such name is not a valid URL. The rest
of the URL is judged as it will be requested too (`Destination.normalised`): the scheme's
default port left out, the path never empty, its escaped unreserved characters and its dot
segments resolved (RFC 3986, 6.2.2), so that no spelling of a URL escapes a pattern that
another spelling of it matches.

Refusals are plain exceptions (`DestinationInvalid`, `DestinationForbidden`) with a message
naming the URL as the client knows it (`name`); each user turns them into its own errors.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import anyio
import idna

MAX_URL_LENGTH = 2048
MAX_NAME_LENGTH = 253  # RFC 1035, without the trailing dot
DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms whose last 32 bits are an IPv4 address that something on the way may dial.
_LOW_32_BITS_IPV4 = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (RFC 4291, deprecated; Linux sit0)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
)
# NAT64 local-use prefix (RFC 8215): the operator's own translators, with any prefix length
# inside it, so where the IPv4 address sits is unknown; none of it is public.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
# An ASCII label as resolvers take it: letters, digits, hyphens and the underscore that some
# served names carry (IDNA 2008 would refuse it; DNS and browsers do not).
_ASCII_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)  # RFC 3986, 2.3: the same character, escaped or not


class DestinationInvalid(ValueError):
    """Not a URL the server can go to at all: its form is wrong."""


class DestinationForbidden(ValueError):
    """A well-formed URL the server must not go to (a non-public address, a denied URL)."""


class Unresolvable(DestinationForbidden):
    """The host has no address (now): forbidden where a refusal is final (webhooks), a
    passing failure where the fetch is retried (imports)."""


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, IPv4-compatible,
    IPv4-translated, NAT64 (64:ff9b::/96), 6to4 (2002::/16), and Teredo's server and client."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if any(address in network for network in _LOW_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, CGNAT, reserved,
    multicast or unspecified; an IPv6 address only if every IPv4 address it embeds is too (a
    NAT64 translator or a tunnel on the way would dial that one)."""
    if isinstance(address, ipaddress.IPv4Address):
        return _is_global(address)
    if address in _NAT64_LOCAL_USE:
        return False
    # An IPv4-mapped address is only a spelling of its IPv4 address: judged as that alone (the
    # stdlib's verdict on the IPv6 form has changed between Python releases).
    if address.ipv4_mapped is None and not _is_global(address):
        return False
    return all(_is_global(ipv4) for ipv4 in embedded_ipv4(address))


def _is_global(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Destination:
    """A vetted URL: `host` is the normalised ASCII name (or the address, without brackets)
    that is resolved, sent as `Host` and used for TLS SNI; `port` the one connected to."""

    url: SplitResult
    host: str
    port: int

    @property
    def authority(self) -> str:
        """The `Host` header: the normalised host, with the port unless it is the scheme's
        default (as `https://a.example:443/` and `https://a.example/` are one URL)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.url.scheme] else f"{host}:{self.port}"

    @property
    def path(self) -> str:
        """The path as it is requested (`normalise_path`)."""
        return normalise_path(self.url.path)

    @property
    def normalised(self) -> str:
        """The URL as it is requested, by its host's name: the normalised authority and
        path, the query as sent, no fragment. What patterns are matched against."""
        return self.url._replace(netloc=self.authority, path=self.path, fragment="").geturl()

    def pinned(self, address: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """What connects to the vetted `address` itself: the URL to request (the normalised
        one's path and query), the `Host` header and the request extensions (TLS SNI, and so
        the certificate's name, is the normalised host)."""
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{self.port}"
        url = self.url._replace(netloc=netloc, path=self.path, fragment="").geturl()
        extensions = {"sni_hostname": self.host} if self.url.scheme == "https" else {}
        return url, {"Host": self.authority}, extensions


def parse_destination(raw: str, *, allow_private: bool, name: str) -> Destination:
    """Validate a URL's form and normalise its host; refuse a host that is plainly not public
    (by its normalised name, or an address literal in any of its spellings). `name`: the URL
    as the client knows it (`callback_url`), for the messages."""
    if len(raw) > MAX_URL_LENGTH or any(ord(ch) < 33 or ord(ch) == 127 for ch in raw):
        raise DestinationInvalid(
            f"{name} must be at most {MAX_URL_LENGTH} characters, without spaces or "
            "control characters."
        )
    try:
        url = urlsplit(raw)
        explicit = url.port  # a ValueError past 65535
    except ValueError as exc:
        raise DestinationInvalid(f"{name} is not a valid URL: {exc}.") from exc
    if url.scheme not in DEFAULT_PORTS or not url.hostname:
        raise DestinationInvalid(f"{name} must be an absolute http:// or https:// URL.")
    if explicit == 0:  # no port to connect to (a socket would pick one, httpx the default)
        raise DestinationInvalid(f"{name}'s port must be between 1 and 65535.")
    port = DEFAULT_PORTS[url.scheme] if explicit is None else explicit
    if url.username or url.password:
        raise DestinationInvalid(f"{name} must not carry credentials.")
    if url.netloc.rpartition("@")[2].startswith("["):
        host = url.hostname
        try:
            bracketed = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise DestinationInvalid(f"{name}'s [host] is not an IPv6 address.") from exc
        if bracketed.scope_id:
            # A zone names an interface of this machine: no part of a public address.
            raise DestinationInvalid(f"{name}'s IPv6 address must not carry a zone.")
        literal: IPAddress | None = bracketed
    else:
        host = normalise_host(url.hostname, name=name)
        literal = _literal(host)
    if not allow_private:
        if literal is None and (host == "localhost" or host.endswith(".localhost")):
            raise DestinationForbidden(f"{name} points at this machine.")
        if literal is not None and not is_public(literal):
            raise DestinationForbidden(f"{name} points at a non-public address ({literal}).")
    return Destination(url, host, port)


def normalise_host(host: str, *, name: str = "the URL") -> str:
    """The ASCII name `host` is looked up as: UTS #46-mapped (case folded, look-alikes and
    other full stops mapped, ignorable characters dropped), each non-ASCII label encoded as an
    IDNA 2008 A-label, without the trailing dot of a fully qualified name."""
    try:
        labels = idna.uts46_remap(host, std3_rules=False).split(".")
        if len(labels) > 1 and labels[-1] == "":
            labels.pop()
        ascii_name = ".".join(_ascii_label(label) for label in labels)
    except UnicodeError as exc:  # idna.IDNAError is one
        raise DestinationInvalid(f"{name}'s host is not a valid domain name ({exc}).") from exc
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise DestinationInvalid(
            f"{name}'s host is longer than the {MAX_NAME_LENGTH} characters DNS allows."
        )
    return ascii_name


def normalise_path(path: str) -> str:
    """`path` as RFC 3986 (6.2.2) compares it, and as it is requested: escaped unreserved
    characters unescaped (`%73` is `s`), other escapes in upper case, dot segments resolved
    (section 5.2.4, as httpx does to what it sends), and `/` for none."""
    unescaped = _ESCAPE.sub(_unescape_unreserved, path)
    output: list[str] = []
    segments = unescaped.split("/")
    for segment in segments[1:]:  # an absolute path: the first is the empty one before "/"
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")  # "/a/b/.." is "/a/", a directory
    return "/" + "/".join(output)


def _unescape_unreserved(escape: re.Match[str]) -> str:
    character = chr(int(escape[1], 16))
    return character if character in _UNRESERVED else escape[0].upper()


def _ascii_label(label: str) -> str:
    if not label.isascii():
        return idna.alabel(label).decode("ascii")
    if label.startswith("xn--"):
        idna.ulabel(label)  # only the canonical Punycode of a valid label, as IDNA 2008 says
    if not _ASCII_LABEL.fullmatch(label):
        raise idna.IDNAError(
            f"label {label!r} is empty, longer than 63 characters, or has characters other "
            "than letters, digits, '-' and '_'"
        )
    return label


async def resolve_public(target: Destination, *, allow_private: bool) -> str:
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
            raise Unresolvable(f"{target.host} does not resolve: {exc}.") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise Unresolvable(f"{target.host} does not resolve.")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise DestinationForbidden(
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
