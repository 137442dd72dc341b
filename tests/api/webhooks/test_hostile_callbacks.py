"""Hostile callback URLs, as a client sends them: each is refused at submit with 422 and the
problem's code, and leaves nothing behind. The host is judged as it will be dialled, after
UTS #46 mapping, so look-alike spellings of this machine or of private networks are refused as
surely as their plain forms; a host that is no valid domain name is refused as invalid."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.jobs import submit
from tests.support.problems import assert_problem
from tests.support.storage import stored

SECRET = "hook-secret-0123456789-abcdefghijklmnop"
FORBIDDEN = "callback_url_forbidden"
INVALID = "invalid_callback_url"
# Look-alikes are written as escapes: the characters themselves read as their ASCII twins.
CIRCLED_LOCALHOST = "\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3"

CATALOG: dict[str, str] = {
    # This machine, spelled otherwise.
    "http://localhost./hook": FORBIDDEN,  # the fully qualified form of localhost
    "http://api.localhost./hook": FORBIDDEN,
    f"http://{CIRCLED_LOCALHOST}:8312/x": FORBIDDEN,  # circled letters map to "localhost"
    "http://\uff2c\uff2f\uff23\uff21\uff2c\uff28\uff2f\uff33\uff34/x": FORBIDDEN,  # fullwidth
    "http://\u2460\u2461\u2466.0.0.1/x": FORBIDDEN,  # circled digits: 127.0.0.1
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/x": FORBIDDEN,  # fullwidth digits
    "http://127\u30020\u30020\u30021/x": FORBIDDEN,  # ideographic full stops are dots
    "http://127.0.0.1./x": FORBIDDEN,
    "http://0x7f.1./x": FORBIDDEN,  # the inet_aton shorthand, fully qualified
    # IPv6 literals that carry a private IPv4 address.
    "http://[64:ff9b::a00:1]/x": FORBIDDEN,  # NAT64: 10.0.0.1 on a NAT64 network
    "http://[64:ff9b::127.0.0.1]/x": FORBIDDEN,
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data": FORBIDDEN,  # cloud metadata via NAT64
    "http://[64:ff9b:1::a00:1]/x": FORBIDDEN,  # NAT64 local-use prefix
    "http://[64:ff9b:1::808:808]/x": FORBIDDEN,  # ... refused as a whole
    "http://[2002:a00:1::]/x": FORBIDDEN,  # 6to4 of 10.0.0.1
    "http://[2002:7f00:1::1]/x": FORBIDDEN,
    "http://[::127.0.0.1]/x": FORBIDDEN,  # IPv4-compatible
    "http://[::a9fe:a9fe]/x": FORBIDDEN,
    "http://[::ffff:0:a00:1]/x": FORBIDDEN,  # IPv4-translated (SIIT)
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/x": FORBIDDEN,  # Teredo, client 10.0.0.1
    # Hosts that are no domain name: nothing could be dialled, or DNS and we would disagree.
    "http://a\u200db.example/x": INVALID,  # a joiner outside its allowed context
    "http://\u202eevil.example/x": INVALID,  # a bidi override
    "http://a..b.example/x": INVALID,  # an empty label
    "http://./x": INVALID,
    "http://xn--a.example/x": INVALID,  # an ACE prefix on what is no Punycode label
    "http://" + "a" * 64 + ".example/x": INVALID,  # a label longer than DNS allows
    "http://%6c%6f%63%61%6c%68%6f%73%74/x": INVALID,  # percent-encoded "localhost"
    "http://[v1.fe]/x": INVALID,  # an IPvFuture literal, which no resolver takes
    "http://[2606:4700::1111%25eth0]/x": INVALID,  # a zone: one of this machine's interfaces
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET}


async def test_hostile_callback_urls_are_refused_at_submit(
    app: FastAPI, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_deliveries() -> int:
        return 0

    # The catalog judges submit alone: whatever a broken guard let in is never dialled here.
    monkeypatch.setattr(app.state.webhooks, "deliver_due", no_deliveries)
    outcomes: dict[str, str] = {}
    for url in CATALOG:
        response = await submit(alice, b"payload", callback_url=url)
        outcomes[url] = response.json().get("code", str(response.status_code))
        if response.status_code == 422:
            assert_problem(response, 422, outcomes[url])
    assert outcomes == CATALOG
    assert await stored(app) == []
    assert (await alice.get("/v1/jobs")).json()["items"] == []
