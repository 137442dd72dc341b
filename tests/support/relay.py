"""A TCP relay on 127.0.0.1 between a client and a live server, for the network faults the
client must live through: it counts and reads what the client sends (request lines, each
PATCH's Upload-Offset), can slow it down (`rate`), cut a connection once it has forwarded
`cut_at` bytes towards the server, or swallow the answer to the next POST /v1/jobs and close
the connection (the server made the job; the client never hears of it)."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import suppress

_REQUEST = re.compile(rb"(GET|HEAD|POST|PATCH|PUT|DELETE|OPTIONS) (/\S*) HTTP/1\.1\r\n")
_OFFSET = re.compile(rb"(?i)\r\nupload-offset: *(\d+)\r\n")


class Relay:
    def __init__(self, upstream: str, rate: int | None = None) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.rate = rate  # bytes per second towards the server; None: as fast as it goes
        self.cut_at: int | None = None  # once: the connection that forwards this many bytes
        self.swallow_job_answer = False  # once: the answer to a POST /v1/jobs
        self.sent = 0  # bytes forwarded towards the server
        self.requests: list[str] = []  # "METHOD /path", in order
        self.offsets: list[int] = []  # each request's Upload-Offset
        self.cuts = 0
        self.swallowed = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def reset(self) -> None:
        with self._lock:
            self.sent, self.requests, self.offsets = 0, [], []

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                close_sockets(downstream)
                continue
            doomed = threading.Event()  # this connection's next answer is swallowed
            threading.Thread(
                target=self._up, args=(downstream, upstream, doomed), daemon=True
            ).start()
            threading.Thread(
                target=self._down, args=(upstream, downstream, doomed), daemon=True
            ).start()

    def _up(self, source: socket.socket, target: socket.socket, doomed: threading.Event) -> None:
        forwarded = 0
        try:
            while data := source.recv(16 * 1024 if self.rate else 256 * 1024):
                with self._lock:
                    cut = self.cut_at is not None and forwarded + len(data) >= self.cut_at
                    if cut:
                        assert self.cut_at is not None
                        data = data[: self.cut_at - forwarded]
                        self.cut_at = None
                        self.cuts += 1
                    self.sent += len(data)
                    for method, path in _REQUEST.findall(data):
                        self.requests.append(f"{method.decode()} {path.decode()}")
                        if self.swallow_job_answer and (method, path) == (b"POST", b"/v1/jobs"):
                            self.swallow_job_answer = False
                            doomed.set()
                    self.offsets += [int(n) for n in _OFFSET.findall(data)]
                target.sendall(data)
                forwarded += len(data)
                if cut:
                    return
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            close_sockets(source, target)

    def _down(self, source: socket.socket, target: socket.socket, doomed: threading.Event) -> None:
        try:
            while data := source.recv(256 * 1024):
                if doomed.is_set():
                    with self._lock:
                        self.swallowed += 1
                    return  # the server answered; the client never hears it
                target.sendall(data)
        except OSError:
            pass
        finally:
            close_sockets(source, target)


def close_sockets(*sockets: socket.socket) -> None:
    """Shut down and close each socket, whatever state it is in."""
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
