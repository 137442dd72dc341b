"""Ports on 127.0.0.1 for the servers tests start, and who listens on them."""

from __future__ import annotations

import socket
from contextlib import ExitStack

import psutil  # type: ignore[import-untyped]  # no stubs installed


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now (all held open while choosing, so the
    kernel cannot hand out one twice). Another process may still take one before its user
    binds it: callers that start servers retry on a bind failure."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds the listening socket of `port` (a server answering on a
    port chosen free may be another process that took it first)."""
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)
