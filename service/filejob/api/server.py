"""How `filejob serve` runs the app under uvicorn, with a drain phase before shutting down.

On the first SIGTERM/SIGINT: uploads are refused with 503 (status and downloads keep working),
no new job starts, and running jobs get up to `grace` seconds to finish. Then uvicorn shuts down
as usual; jobs still running are stopped and stay queued for the next start. A second signal
skips the wait. The process exits 0: the signal is handled, not re-raised.

`listen` binds the server's sockets before anything starts, so that a port already taken stops
`filejob serve` with a message naming it instead of after the app said it was ready.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("filejob")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, grace: float) -> None:
        super().__init__(config)
        self.app = app
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets and self.started:
            # uvicorn says where it listens only for sockets it bound itself.
            self._log_started_message(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler in the loop's thread: only hand over to the loop here.
        if self._drain is not None or self._loop is None or not self.started:
            self.should_exit = True  # second signal, or not serving yet: stop now
            if sig == signal.SIGINT and self._drain is not None:
                self.force_exit = True
            return
        self._loop.call_soon_threadsafe(self._begin_drain)

    def _begin_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        self.app.state.draining = True
        executor = self.app.state.services.executor
        log.info("draining: uploads refused, up to %.0fs for running jobs", self.grace)
        try:
            await executor.finish_running(self.grace)
        finally:
            self.should_exit = True


class CannotListen(Exception):
    """The server's address cannot be bound; the message names host and port."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for `host`:`port`, one per address the host resolves to, as asyncio's
    `create_server` would make them (SO_REUSEADDR, IPv6 sockets IPv6-only); uvicorn listens on
    them. Raises CannotListen, with every socket made so far closed."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {reason.lower()}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"cannot listen on {where}: address already in use "
                f"(another process holds port {port})"
            ) from None
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {reason.lower()}") from None
    return sockets
