"""The SSRF address rules and the signature format, case by case."""

from __future__ import annotations

import ipaddress
import time

import pytest

from service.errors import CallbackForbidden
from service.webhooks.addresses import CallbackTarget, is_public, parse_callback_url, resolve_public
from service.webhooks.signature import sign, verify


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
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


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
