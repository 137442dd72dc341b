"""No connection of a pinned request serves another: requests to two names served at one
address (where TLS would have verified the first name's certificate only) go over two
connections, for imports' fetches and webhooks' deliveries alike. The server here keeps every
connection alive (HTTP/1.1), so only the client can be the one that does not reuse it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast

import anyio
import pytest

from filejob.jobs.model import Job
from filejob.jobs.states import JobStatus
from filejob.untrusted.downloads import GuardedDownloads, UrlRules
from filejob.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy

NAMES = ("a.example", "b.example")


@dataclass
class KeepAlive:
    """What a keep-alive server saw: each request's `Host`, and the client's port (one per
    connection)."""

    port: int
    requests: list[tuple[str, int]] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len({peer for _, peer in self.requests})


@contextmanager
def keep_alive_server() -> Iterator[KeepAlive]:
    """An HTTP/1.1 server on 127.0.0.1 that answers a GET `200 ok` and a POST `204` (a body
    left unread would end the connection anyway), and keeps the connection open for the
    next request."""
    seen: list[KeepAlive] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen[0].requests.append((self.headers["Host"], self.client_address[1]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen[0].requests.append((self.headers["Host"], self.client_address[1]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    seen.append(KeepAlive(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen[0]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeepAlive]:
    """The keep-alive server, both `NAMES` resolving to its address."""
    monkeypatch.setattr(anyio, "getaddrinfo", _resolving(NAMES, "127.0.0.1"))
    with keep_alive_server() as server:
        yield server


def _resolving(names: tuple[str, ...], address: str) -> Callable[..., Awaitable[list[Any]]]:
    async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host in names, host  # no lookup leaves the machine
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


async def test_fetches_of_two_names_at_one_address_use_two_connections(
    server: KeepAlive,
) -> None:
    fetcher = GuardedDownloads(UrlRules(allow_private=True), timeout=5.0)
    try:
        for name in NAMES:
            async with fetcher.open(f"http://{name}:{server.port}/file") as download:
                assert b"".join([chunk async for chunk in download.chunks()]) == b"ok"
    finally:
        await fetcher.aclose()
    assert [host for host, _ in server.requests] == [f"{name}:{server.port}" for name in NAMES]
    assert server.connections == 2


async def test_deliveries_to_two_names_at_one_address_use_two_connections(
    server: KeepAlive,
) -> None:
    policy = WebhookPolicy(allow_private=True, anonymous_secret="whsec_test")
    dispatcher = WebhookDispatcher(cast(Any, None), lambda job: b"{}", policy)
    try:
        for name in NAMES:
            job = SimpleNamespace(
                id=f"job-{name}",
                owner_id=None,  # signed with the anonymous secret: no database read
                status=JobStatus.SUCCEEDED,
                callback_url=f"http://{name}:{server.port}/hook",
            )
            assert await dispatcher._post(cast(Job, job)) == 204
    finally:
        await dispatcher.close()
    assert [host for host, _ in server.requests] == [f"{name}:{server.port}" for name in NAMES]
    assert server.connections == 2
