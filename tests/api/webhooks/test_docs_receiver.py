"""The receiver code in docs/security.md accepts a real delivery once, and refuses forgeries
and replays."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from filejob.webhooks.signature import sign
from tests.support.jobs import submit
from tests.support.webhooks import SECRET, Receiver, settled

PAGE = Path(__file__).resolve().parents[3] / "docs" / "security.md"


def documented_receiver() -> dict[str, Any]:
    """The receiver from docs/security.md, run as written."""
    block = PAGE.read_text().split("<!-- webhook-verify")[1].split("<!-- /webhook-verify -->")[0]
    code = block.split("```python")[1].split("```")[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/security.md", "exec"), namespace)
    return namespace


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "required", "secret_key": SECRET, "webhook_allow_private": True}


async def test_the_documented_receiver_verifies_real_deliveries(
    app: FastAPI,
    alice: Any,
    receiver: Receiver,
    run_until_idle: Callable[[], Any],
) -> None:
    verify = documented_receiver()["verify_filejob_webhook"]
    created = await submit(alice, b"payload", callback_url=receiver.url)
    await run_until_idle()
    await settled(app, alice, created.json()["id"])
    [delivery] = receiver.deliveries
    secret = alice.key.webhook_secret
    assert verify(secret, delivery.headers, delivery.body)
    assert not verify(secret, delivery.headers, delivery.body)  # the same delivery again
    assert not verify(secret, delivery.headers, delivery.body + b" ")  # a changed body
    assert not verify("whsec_wrong", delivery.headers, delivery.body)
    old = int(time.time()) - 600  # a replay with a correctly signed but old timestamp
    replayed = delivery.headers | {"Filejob-Signature": sign(secret, delivery.body, old)}
    assert not verify(secret, replayed, delivery.body)
