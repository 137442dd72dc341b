"""Webhooks reach a real receiver: signed, retried with backoff, bounded, never redirected."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.jobs.model import utcnow
from filejob.jobs.repository import JobRepository
from filejob.jobs.states import CallbackState
from filejob.webhooks import addresses
from filejob.webhooks.repository import CallbackRepository
from filejob.webhooks.signature import verify
from tests.support.auth import tenant
from tests.support.jobs import submit, wait_for_status
from tests.support.storage import stored
from tests.support.webhooks import SECRET, Receiver, settled

CIRCLED_LOCALHOST = "\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3"  # "localhost"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "auth": "required",
        "secret_key": SECRET,
        "webhook_allow_private": True,  # the receiver is on 127.0.0.1
        "webhook_retry_delay": 0,
        "webhook_timeout": 0.5,
        "webhook_max_attempts": 3,
    }


def resolving(answers: dict[str, str]) -> Callable[..., Awaitable[Any]]:
    """anyio.getaddrinfo, but the names in `answers` resolve to the given address."""
    real = addresses.anyio.getaddrinfo

    async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            family = socket.AF_INET6 if ":" in answers[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return await real(host, port, *args, **kwargs)

    return getaddrinfo


async def test_a_final_job_is_delivered_signed(
    app: FastAPI, alice: Any, receiver: Receiver, run_until_idle: Callable[[], Any]
) -> None:
    created = await submit(alice, b"payload", callback_url=f"{receiver.url}/hooks/filejob?x=1")
    assert created.status_code == 202
    queued = created.json()["callback"]
    assert queued == {
        "url": f"{receiver.url}/hooks/filejob?x=1",
        "state": None,
        "attempts": 0,
        "last_result": None,
        "delivered_at": None,
    }
    await run_until_idle()
    job = await settled(app, alice, created.json()["id"])
    assert job["callback"]["state"] == "delivered"
    assert job["callback"]["attempts"] == 1 and job["callback"]["last_result"] == "200"
    [delivery] = receiver.deliveries
    assert delivery.path == "/hooks/filejob?x=1"
    assert delivery.headers["Filejob-Event"] == "job.succeeded"
    assert delivery.headers["Filejob-Delivery"] == job["id"]
    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["Host"] == receiver.url.removeprefix("http://")
    secret = alice.key.webhook_secret
    assert verify(secret, delivery.headers["Filejob-Signature"], delivery.body)
    assert not verify("whsec_other", delivery.headers["Filejob-Signature"], delivery.body)
    sent = json.loads(delivery.body)
    assert sent["id"] == job["id"] and sent["status"] == "succeeded"
    assert sent["result"]["sha256"] == job["result"]["sha256"]


async def test_failures_are_retried_until_delivered(
    app: FastAPI, alice: Any, receiver: Receiver, run_until_idle: Callable[[], Any]
) -> None:
    receiver.replies = [500, 503, 200]
    created = await submit(alice, b"payload", callback_url=receiver.url)
    await run_until_idle()
    job = await settled(app, alice, created.json()["id"])
    assert job["callback"]["state"] == "delivered"
    assert job["callback"]["attempts"] == 3
    assert [d.headers["Filejob-Delivery"] for d in receiver.deliveries] == [job["id"]] * 3
    for delivery in receiver.deliveries:
        assert verify(
            alice.key.webhook_secret, delivery.headers["Filejob-Signature"], delivery.body
        )


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (500, "500"),
        (("redirect", "/elsewhere"), "302"),
        (("sleep", 1.5), "timeout"),
        (("trickle", 0.3), "timeout"),  # ~11 s a reply, each byte within the read timeout
    ],
    ids=["server-error", "redirect", "timeout", "trickled-reply"],
)
async def test_attempts_are_bounded_and_visible(
    app: FastAPI,
    alice: Any,
    receiver: Receiver,
    run_until_idle: Callable[[], Any],
    reply: object,
    outcome: str,
) -> None:
    receiver.replies = [reply]
    created = await submit(alice, b"payload", callback_url=receiver.url)
    await run_until_idle()
    job = await settled(app, alice, created.json()["id"])
    assert job["callback"]["state"] == "failed"
    assert job["callback"]["attempts"] == 3
    assert job["callback"]["last_result"] == outcome
    assert [d.path for d in receiver.deliveries] == ["/"] * 3  # a redirect is not followed
    assert await app.state.webhooks.deliver_due() == 0  # nothing more is due


async def test_the_backoff_doubles(
    app: FastAPI, alice: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from filejob.webhooks.dispatcher import WebhookDispatcher

    async def none_due() -> int:
        return 0

    # Only `slow` delivers: the app's own dispatcher (every second, with its own policy) would
    # otherwise race it for each attempt the test makes due.
    monkeypatch.setattr(app.state.webhooks, "deliver_due", none_due)
    policy = app.state.webhooks.policy
    slow = WebhookDispatcher(
        app.state.services.jobs.db,
        app.state.webhooks.render,
        type(policy)(allow_private=True, timeout=0.5, max_attempts=5, retry_delay=10),
    )
    receiver.replies = [500]
    created = await submit(alice, b"p", "slow", params={"steps": 1}, callback_url=receiver.url)
    job_id = created.json()["id"]
    await wait_for_status(alice, job_id, "succeeded")
    gaps = []
    async with slow.db.read() as session:
        job = await JobRepository(session).get(job_id)
    assert job is not None
    for attempt in (1, 2):
        async with slow.db.write() as session:  # make the next attempt due now
            await CallbackRepository(session).record(job_id, callback_next_at=job.finished_at)
        assert await slow.deliver_due() == 1
        async with slow.db.read() as session:
            job = await JobRepository(session).get(job_id)
        assert job is not None and job.callback_next_at is not None
        assert job.callback_attempts == attempt
        gaps.append((job.callback_next_at - job.updated_at) / timedelta(seconds=1))
    await slow.close()
    assert 9 <= gaps[0] <= 11.5 and 18 <= gaps[1] <= 22.5  # 10 s, then 20 s, ±10 % jitter


async def test_a_cancelled_job_is_announced(app: FastAPI, alice: Any, receiver: Receiver) -> None:
    created = await submit(
        alice, b"p", "slow", params={"gate": "hooks-never"}, callback_url=receiver.url
    )
    assert (await alice.delete(f"/v1/jobs/{created.json()['id']}")).status_code == 204
    await settled(app, alice, created.json()["id"])
    [delivery] = receiver.deliveries
    assert delivery.headers["Filejob-Event"] == "job.cancelled"


async def test_a_poisoned_delivery_leaves_every_other_alone(
    app: FastAPI, alice: Any, receiver: Receiver, run_until_idle: Callable[[], Any]
) -> None:
    """An old row whose host can never be encoded (it predates the submit-time check) is due
    first in every pass; it must fail alone, not take the other tenants' webhooks with it."""
    db = app.state.services.jobs.db
    async with await tenant(app, "mallory") as mallory, await tenant(app, "bob") as bob:
        poisoned = (await submit(mallory, b"payload")).json()["id"]
        await run_until_idle()
        await wait_for_status(mallory, poisoned, "succeeded")
        async with db.write() as session:
            await CallbackRepository(session).record(
                poisoned,
                callback_url="http://a\u200db.example/x",
                callback_state=CallbackState.PENDING,
                callback_next_at=utcnow(),
                callback_attempts=0,
            )
        tenants = {"alice": alice, "bob": bob}
        submitted = {
            name: (await submit(client, b"payload", callback_url=f"{receiver.url}/{name}"))
            for name, client in tenants.items()
        }
        await run_until_idle()
        for name, client in tenants.items():
            job = await settled(app, client, submitted[name].json()["id"])
            assert (job["callback"]["state"], job["callback"]["attempts"]) == ("delivered", 1)
        bad = await settled(app, mallory, poisoned)
    assert sorted(d.path for d in receiver.deliveries) == ["/alice", "/bob"]
    assert bad["callback"]["state"] == "failed"  # an unencodable host can never succeed
    assert bad["callback"]["attempts"] == 1
    assert bad["callback"]["last_result"].startswith(
        "refused: callback_url's host is not a valid domain name"
    )
    assert "U+200D" in bad["callback"]["last_result"]


async def test_an_unexpected_error_is_that_deliverys_failed_attempt(
    app: FastAPI,
    alice: Any,
    receiver: Receiver,
    run_until_idle: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever a delivery raises is that delivery's failed attempt: recorded with its reason,
    logged with its traceback, retried like any failure; the pass goes on."""
    real = addresses.anyio.getaddrinfo

    async def broken(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.broken.example":
            raise UnicodeError("label empty or too long")  # what the stdlib codec raises
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(addresses.anyio, "getaddrinfo", broken)
    port = receiver.url.rpartition(":")[2]
    failing = await submit(
        alice, b"payload", callback_url=f"http://hooks.broken.example:{port}/broken"
    )
    fine = await submit(alice, b"payload", callback_url=f"{receiver.url}/fine")
    with caplog.at_level(logging.ERROR, logger="filejob.webhooks.dispatcher"):
        await run_until_idle()
        broken_job = await settled(app, alice, failing.json()["id"])
        fine_job = await settled(app, alice, fine.json()["id"])
    assert fine_job["callback"]["state"] == "delivered"
    assert [d.path for d in receiver.deliveries] == ["/fine"]
    assert broken_job["callback"]["state"] == "failed"
    assert broken_job["callback"]["attempts"] == 3  # retried up to webhook_max_attempts
    assert broken_job["callback"]["last_result"] == "error: UnicodeError"
    logged = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and failing.json()["id"] in r.getMessage()
    ]
    assert len(logged) == 3
    assert all(r.exc_info and r.exc_info[0] is UnicodeError for r in logged)


async def test_an_idn_host_is_dialled_by_its_ascii_name(
    app: FastAPI, alice: Any, receiver: Receiver, run_until_idle: Callable[[], Any]
) -> None:
    port = receiver.url.rpartition(":")[2]
    url = f"http://{CIRCLED_LOCALHOST}:{port}/idn"
    created = await submit(alice, b"payload", callback_url=url)
    assert created.status_code == 202  # private hosts are allowed in this module
    assert created.json()["callback"]["url"] == url  # the job keeps the URL as given
    await run_until_idle()
    job = await settled(app, alice, created.json()["id"])
    assert job["callback"]["state"] == "delivered"
    [delivery] = receiver.deliveries
    assert delivery.headers["Host"] == f"localhost:{port}"  # the ASCII name it maps to


class TestSsrfGuard:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "required", "secret_key": SECRET, "webhook_retry_delay": 0}

    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("http://127.0.0.1:9/hook", "callback_url_forbidden"),
            ("http://localhost/hook", "callback_url_forbidden"),
            ("http://[::1]/hook", "callback_url_forbidden"),
            ("http://169.254.169.254/latest/meta-data", "callback_url_forbidden"),
            ("http://10.0.0.7/hook", "callback_url_forbidden"),
            ("http://0x7f.1/hook", "callback_url_forbidden"),
            ("http://[::ffff:192.168.0.1]/", "callback_url_forbidden"),
            ("ftp://example.com/hook", "invalid_callback_url"),
            ("/relative", "invalid_callback_url"),
            ("http://user:pass@example.com/", "invalid_callback_url"),
            ("http://example.com/" + "a" * 3000, "validation_error"),
        ],
    )
    async def test_non_public_callbacks_are_refused_at_submit(
        self, app: Any, alice: Any, data_dir: Any, url: str, code: str
    ) -> None:
        response = await submit(alice, b"payload", callback_url=url)
        assert response.status_code == 422
        assert response.json()["code"] == code
        assert await stored(app) == []
        assert (await alice.get("/v1/jobs")).json()["items"] == []

    async def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
        self,
        app: FastAPI,
        alice: Any,
        receiver: Receiver,
        run_until_idle: Callable[[], Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """DNS rebinding: the name looked harmless at submit and answers 127.0.0.1 later."""
        rebinding = resolving({"hooks.rebind.example": "127.0.0.1"})
        monkeypatch.setattr(addresses.anyio, "getaddrinfo", rebinding)
        port = receiver.url.rpartition(":")[2]
        url = f"http://hooks.rebind.example:{port}/"
        created = await submit(alice, b"payload", callback_url=url)
        assert created.status_code == 202  # the name only shows its address when resolved
        await run_until_idle()
        job = await settled(app, alice, created.json()["id"])
        assert job["callback"]["state"] == "failed"
        assert job["callback"]["attempts"] == 1  # a refusal is final, not retried
        assert job["callback"]["last_result"] == (
            "refused: hooks.rebind.example resolves to a non-public address (127.0.0.1)."
        )
        assert receiver.deliveries == []

    @pytest.mark.usefixtures("loopback_only")
    async def test_names_resolving_to_an_embedded_private_ipv4_are_refused_at_delivery(
        self,
        app: FastAPI,
        alice: Any,
        receiver: Receiver,
        run_until_idle: Callable[[], Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        answers = {
            f"hooks-{i}.rebind.example": address
            for i, address in enumerate(
                [
                    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
                    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
                    "64:ff9b:1::808:808",  # NAT64 local-use prefix
                    "2002:a00:1::",  # 6to4 of 10.0.0.1
                    "::127.0.0.1",  # IPv4-compatible
                    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
                    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
                ]
            )
        }
        monkeypatch.setattr(addresses.anyio, "getaddrinfo", resolving(answers))
        port = receiver.url.rpartition(":")[2]
        created = {}
        for name in answers:
            response = await submit(alice, b"payload", callback_url=f"http://{name}:{port}/")
            assert response.status_code == 202
            created[name] = response.json()["id"]
        await run_until_idle()
        for name, address in answers.items():
            job = await settled(app, alice, created[name])
            assert job["callback"]["state"] == "failed"
            assert job["callback"]["attempts"] == 1
            assert job["callback"]["last_result"] == (
                f"refused: {name} resolves to a non-public address "
                f"({ipaddress.ip_address(address)})."
            )
        assert receiver.deliveries == []


class TestResolvedNames:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "required", "secret_key": SECRET, "webhook_allow_private": True}

    async def test_a_name_is_resolved_and_the_vetted_address_dialled(
        self, app: FastAPI, alice: Any, receiver: Receiver, run_until_idle: Callable[[], Any]
    ) -> None:
        port = receiver.url.rpartition(":")[2]
        created = await submit(alice, b"payload", callback_url=f"http://localhost:{port}/h")
        await run_until_idle()
        job = await settled(app, alice, created.json()["id"])
        assert job["callback"]["state"] == "delivered"
        [delivery] = receiver.deliveries
        assert delivery.headers["Host"] == f"localhost:{port}"  # the name, not the address


class TestAnonymous:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "off", "webhook_allow_private": True}

    async def test_anonymous_callbacks_need_a_server_secret(
        self, app: Any, client: httpx.AsyncClient, receiver: Receiver, data_dir: Any
    ) -> None:
        response = await submit(client, b"payload", callback_url=receiver.url)
        assert response.status_code == 422
        assert response.json()["code"] == "webhooks_not_configured"
        assert await stored(app) == []


class TestAnonymousWithSecret:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "off", "webhook_allow_private": True, "webhook_secret": "whsec_anon"}

    async def test_anonymous_callbacks_are_signed_with_the_server_secret(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        receiver: Receiver,
        run_until_idle: Callable[[], Any],
    ) -> None:
        created = await submit(client, b"payload", callback_url=receiver.url)
        await run_until_idle()
        await settled(app, client, created.json()["id"])
        [delivery] = receiver.deliveries
        assert verify("whsec_anon", delivery.headers["Filejob-Signature"], delivery.body)
