"""Who writes an upload's bytes now: a lease on its row, held by one request on any server.

A request claims the upload (repository.claim: compare-and-set on the row), renews the lease
while its body keeps arriving (`LEASE_SECONDS`, renewed every `RENEW_SECONDS` of bytes), and
ends it by acknowledging its bytes. A request whose client went quiet stops renewing, so after
`LEASE_SECONDS` the client's next request may take over; the quiet one finds its renewal
refused before it writes another byte, and stops.

A holder that died cannot release its lease. When its token names this host and a process that
no longer runs (a server killed with SIGKILL, then restarted), the lease is taken over at once;
a holder on another host is waited out (its lease runs out within `LEASE_SECONDS`). Hosts are
told apart by name and PID namespace, so containers sharing a volume never judge each other's
processes.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

LEASE_SECONDS = 10.0
RENEW_SECONDS = 3.0


def _host() -> str:
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()[:64]}/{namespace}"


def new_token() -> str:
    """A lease token: this host, this process, and a random part for the request."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(8)}"


def holder_is_dead(token: str) -> bool:
    """True only if `token` was issued on this host by a process that no longer runs."""
    parts = token.rsplit(":", 2)  # host, pid, random
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # a request of this very process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's live process
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet is dead too."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class Lease:
    """One request's hold on one upload."""

    def __init__(self, upload_id: str, token: str) -> None:
        self.upload_id = upload_id
        self.token = token
        self._renewed = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._renewed >= RENEW_SECONDS

    def renewed(self) -> None:
        self._renewed = time.monotonic()
