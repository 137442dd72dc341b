"""The SSRF address rules and the signature format, case by case."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from filejob.errors import CallbackForbidden, FilejobError
from filejob.webhooks import addresses
from filejob.webhooks.addresses import (
    CallbackTarget,
    embedded_ipv4,
    is_public,
    parse_callback_url,
    resolve_public,
)
from filejob.webhooks.signature import sign, verify


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("127.255.0.9", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("ff02::1", False),
        # IPv6 forms that carry an IPv4 address: public only if the IPv4 one is too.
        ("::ffff:8.8.8.8", True),  # IPv4-mapped: only a spelling of 8.8.8.8
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated, still routed by sit0)
        ("::10.0.0.1", False),
        ("::8.8.8.8", True),  # names 8.8.8.8, wherever it routes at all
        ("::ffff:0:127.0.0.1", False),  # IPv4-translated (SIIT)
        ("64:ff9b::a00:1", False),  # NAT64 well-known prefix: reaches 10.0.0.1
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),  # cloud metadata through NAT64
        ("64:ff9b::808:808", True),  # 8.8.8.8 through NAT64: a public host
        ("64:ff9b:1::a00:1", False),  # NAT64 local-use prefix: the operator's own network
        ("64:ff9b:1::808:808", False),
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:7f00:1::1", False),
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", False),  # Teredo, server 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", False),  # Teredo is never global
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("::ffff:10.0.0.1", ["10.0.0.1"]),
        ("::127.0.0.1", ["127.0.0.1"]),
        ("::ffff:0:10.0.0.1", ["10.0.0.1"]),
        ("64:ff9b::a00:1", ["10.0.0.1"]),
        ("2002:a00:1:2::3", ["10.0.0.1"]),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", ["65.54.227.120", "10.0.0.1"]),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", []),
        ("8.8.8.8", []),
    ],
)
def test_every_embedded_ipv4_is_unwrapped(address: str, embedded: list[str]) -> None:
    assert [str(a) for a in embedded_ipv4(ipaddress.ip_address(address))] == embedded


@pytest.mark.parametrize(
    ("url", "host", "authority"),
    [
        ("https://B\u00fccher.Example./hook", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (
            "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:8312/x",
            "localhost",
            "localhost:8312",
        ),
        ("http://ex\u00adample.com/", "example.com", "example.com"),  # a soft hyphen is ignored
        ("http://EXAMPLE.com.:8080/", "example.com", "example.com:8080"),
        ("http://hooks\u3002example\uff0ecom/", "hooks.example.com", "hooks.example.com"),
        ("http://a_b.example/", "a_b.example", "a_b.example"),  # DNS serves such names
        ("http://xn--bcher-kva.example/", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("http://[64:ff9b::808:808]:8443/", "64:ff9b::808:808", "[64:ff9b::808:808]:8443"),
    ],
)
def test_hosts_are_normalised_to_their_ascii_name(url: str, host: str, authority: str) -> None:
    target = parse_callback_url(url, allow_private=True)
    assert (target.host, target.authority) == (host, authority)
    if host != "localhost":
        assert parse_callback_url(url, allow_private=False).host == host


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://localhost./x", "callback_url_forbidden"),
        ("http://api.localhost./x", "callback_url_forbidden"),
        (
            "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:8312/x",
            "callback_url_forbidden",
        ),
        ("http://\u2460\u2461\u2466.0.0.1/x", "callback_url_forbidden"),
        ("http://127.0.0.1./x", "callback_url_forbidden"),
        ("http://0x7f.1./x", "callback_url_forbidden"),
        ("http://[64:ff9b::a00:1]/x", "callback_url_forbidden"),
        ("http://[64:ff9b:1::a00:1]/x", "callback_url_forbidden"),
        ("http://[2002:a00:1::]/x", "callback_url_forbidden"),
        ("http://[::127.0.0.1]/x", "callback_url_forbidden"),
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/x", "callback_url_forbidden"),
        ("http://a\u200db.example/x", "invalid_callback_url"),
        ("http://a..b.example/x", "invalid_callback_url"),
        ("http://./x", "invalid_callback_url"),
        ("http://xn--a.example/x", "invalid_callback_url"),  # not a real A-label
        ("http://" + "a" * 64 + ".example/x", "invalid_callback_url"),
    ],
)
def test_the_normalised_host_is_judged(url: str, code: str) -> None:
    with pytest.raises(FilejobError) as refused:
        parse_callback_url(url, allow_private=False)
    assert refused.value.code == code


def test_an_unencodable_host_is_invalid_even_where_private_hosts_are_allowed() -> None:
    with pytest.raises(FilejobError) as refused:
        parse_callback_url("http://a\u200db.example/x", allow_private=True)
    assert refused.value.code == "invalid_callback_url"


@pytest.mark.parametrize(
    "answer",
    [
        "64:ff9b::a00:1",
        "64:ff9b:1::a00:1",
        "2002:a00:1::",
        "::127.0.0.1",
        "::ffff:0:a00:1",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    ],
)
async def test_a_name_resolving_to_an_embedded_private_ipv4_is_refused(
    answer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addresses.anyio, "getaddrinfo", _resolving_to(answer))
    target = parse_callback_url("https://hooks.example.com/x", allow_private=False)
    with pytest.raises(CallbackForbidden, match="non-public address"):
        await resolve_public(target, allow_private=False)


async def test_a_name_resolving_to_nat64_of_a_public_ipv4_is_dialled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(addresses.anyio, "getaddrinfo", _resolving_to("64:ff9b::808:808"))
    target = parse_callback_url("https://hooks.example.com/x", allow_private=False)
    assert await resolve_public(target, allow_private=False) == "64:ff9b::808:808"


def _resolving_to(answer: str) -> Callable[..., Awaitable[list[Any]]]:
    """A resolver that answers `answer` for every name (no lookup leaves the machine)."""

    async def getaddrinfo(host: str | bytes, port: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (answer, port, 0, 0))]

    return getaddrinfo


async def test_resolution_refuses_when_any_address_is_private() -> None:
    target = parse_callback_url("http://localhost:8080/x", allow_private=True)
    assert await resolve_public(target, allow_private=True) == "127.0.0.1"
    with pytest.raises(CallbackForbidden):
        await resolve_public(target, allow_private=False)
    missing = CallbackTarget(target.url, "no-such-host.invalid", 80)
    with pytest.raises(CallbackForbidden, match="does not resolve"):
        await resolve_public(missing, allow_private=True)


def test_a_signature_verifies_once_and_only_for_its_body() -> None:
    now = int(time.time())
    header = sign("whsec_a", b'{"id":"x"}', now)
    assert header.startswith(f"t={now},v1=")
    assert verify("whsec_a", header, b'{"id":"x"}')
    assert not verify("whsec_a", header, b'{"id":"y"}')  # another body
    assert not verify("whsec_b", header, b'{"id":"x"}')  # another secret
    stale = sign("whsec_a", b"{}", now - 301)
    assert not verify("whsec_a", stale, b"{}")  # a replay, five minutes on
    assert verify("whsec_a", stale, b"{}", tolerance=600)
    assert not verify("whsec_a", header.replace(f"t={now}", f"t={now + 1}"), b'{"id":"x"}')
    for junk in ("", "t=,v1=", "v1=abc", f"t={now}", f"t={now},v1=é", "t=1,t=2,v1=00"):
        assert not verify("whsec_a", junk, b"{}")
