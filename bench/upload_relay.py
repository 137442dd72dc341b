"""The resume figure: a tus upload through a counting TCP relay that cuts it half way.

`Relay` listens on 127.0.0.1 and forwards each connection to the server, counting the bytes it
forwards from client to server (request lines, headers and bodies: the bytes on the wire).
Once `cut_at` bytes have gone through in all, it forwards exactly up to there and closes both
sides of that connection, once; later connections pass untouched. The client is tuspy (a real
tus client, one connection per request): its PATCH fails, it asks `HEAD` for the offset after
`retry_delay` and goes on from there. If the server keeps what arrived before the cut, the
whole transfer puts the file's size plus the requests' heads on the wire, and nothing twice.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tusclient import client as tus_client
from upload_transfers import HOST, Sent, job_of_link

BUFFER = 1024 * 1024


@dataclass
class Leg:
    """One relayed connection: its first request line and the bytes it carried upwards."""

    request: str = ""
    head_bytes: int = 0  # the first request's line and headers
    sent: int = 0
    cut: bool = False


@dataclass
class Relay:
    target_port: int
    cut_at: int | None = None
    forwarded: int = 0
    legs: list[Leg] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(0.2)  # so that the accept loop sees `close`
        self.port = int(self._listener.getsockname()[1])
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            upstream = socket.create_connection((HOST, self.target_port))
            leg = Leg()
            with self._lock:
                self.legs.append(leg)
            threading.Thread(target=self._serve, args=(client, upstream, leg), daemon=True).start()

    def _serve(self, client: socket.socket, upstream: socket.socket, leg: Leg) -> None:
        down = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        down.start()
        try:
            self._pump_up(client, upstream, leg)
        finally:
            down.join()
            client.close()
            upstream.close()

    def _pump_up(self, client: socket.socket, upstream: socket.socket, leg: Leg) -> None:
        buffer = memoryview(bytearray(BUFFER))
        while n := _recv(client, buffer):
            if not leg.request:
                first = bytes(buffer[:n])
                leg.request = first.split(b"\r\n", 1)[0].decode("latin-1")
                leg.head_bytes = first.find(b"\r\n\r\n") + 4
            with self._lock:
                if self.cut_at is not None and self.forwarded + n >= self.cut_at:
                    n, self.cut_at, leg.cut = self.cut_at - self.forwarded, None, True
                self.forwarded += n
                leg.sent += n
            upstream.sendall(buffer[:n])
            if leg.cut:  # the network goes away mid-request: both sides see it at once
                for side in (client, upstream):
                    with contextlib.suppress(OSError):
                        side.shutdown(socket.SHUT_RDWR)
                return
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)


def _recv(sock: socket.socket, buffer: memoryview) -> int:
    try:
        return sock.recv_into(buffer)
    except OSError:
        return 0


def _pump(source: socket.socket, sink: socket.socket) -> None:
    buffer = memoryview(bytearray(BUFFER))
    while n := _recv(source, buffer):
        try:
            sink.sendall(buffer[:n])
        except OSError:
            return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@dataclass(frozen=True)
class Resume:
    size: int
    wire: int  # bytes forwarded client -> server, whole transfer
    before_cut: int
    file_before_cut: int  # of which file bytes (the rest: request heads)
    heads: int  # request lines and headers, whole transfer
    seconds: float
    legs: list[Leg]
    sent: Sent

    @property
    def resent(self) -> int:
        """File bytes that crossed twice: on the wire, less the heads and the file once."""
        return self.wire - self.heads - self.size


def resume_through_relay(server_port: int, big: Path, patch: int) -> Resume:
    """A tuspy upload of `big` in `patch`-byte PATCHes, cut once half its size has gone."""
    size = big.stat().st_size
    relay = Relay(server_port, cut_at=size // 2)
    try:
        tus = tus_client.TusClient(f"http://{HOST}:{relay.port}/v1/uploads")
        uploader = tus.uploader(
            str(big),
            chunk_size=patch,
            metadata={"processor": "checksum", "filename": big.name},
            retries=3,
            retry_delay=1,
        )
        started = time.perf_counter()
        uploader.upload()
        seconds = time.perf_counter() - started
    finally:
        relay.close()
    if relay.cut_at is not None:
        raise RuntimeError("the relay never cut the upload")
    legs = list(relay.legs)
    cut = next(i for i, leg in enumerate(legs) if leg.cut)
    last = uploader.request
    link = last.response_headers.get("link", "") if last is not None else ""
    return Resume(
        size=size,
        wire=relay.forwarded,
        before_cut=sum(leg.sent for leg in legs[: cut + 1]),
        file_before_cut=sum(leg.sent - leg.head_bytes for leg in legs[: cut + 1]),
        heads=sum(leg.head_bytes for leg in legs),
        seconds=seconds,
        legs=legs,
        sent=Sent(seconds, job_id=job_of_link(link), requests=len(legs)),
    )


def describe(resume: Resume) -> str:
    """The connections in order, runs of the same request folded: `POST, PATCH x8, ...`."""
    names = [leg.request.split(" ", 1)[0] + (" (cut)" if leg.cut else "") for leg in resume.legs]
    runs: list[tuple[str, int]] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1] + 1)
        else:
            runs.append((name, 1))
    return ", ".join(name if n == 1 else f"{name} x{n}" for name, n in runs)
