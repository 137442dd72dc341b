"""A real origin server for imports: HTTP on 127.0.0.1 in a thread, each path answering with
scripted replies (a file, a status, a redirect, a body held at a gate, a stream without a
length), recording every request it gets."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zstandard

GATE_LIMIT = 30.0  # seconds a gated reply waits at most (a test that failed never opens it)


@dataclass(frozen=True)
class File:
    """200 with `data`; without `length`, no Content-Length: the body ends when the
    connection closes. With `encoding`, that Content-Encoding is announced (`data` is sent as
    given: the test codes it)."""

    data: bytes
    content_type: str = "application/octet-stream"
    disposition: str | None = None
    length: bool = True
    encoding: str | None = None


@dataclass(frozen=True)
class Gated:
    """200 with `data` (its Content-Length sent unless not `length`), its first `split` bytes
    at once, the rest once the test sets `gate`."""

    data: bytes
    split: int
    gate: threading.Event
    length: bool = True


@dataclass(frozen=True)
class Status:
    """An answer without a body: `status`, with `location` for a redirect."""

    status: int
    location: str | None = None


Reply = File | Gated | Status


@dataclass
class Origin:
    url: str  # http://127.0.0.1:PORT
    port: int
    # Each path's replies, in order; the last one repeats.
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # the paths asked for, in order

    def serve(self, path: str, *replies: Reply) -> str:
        """Answer `path` with `replies`; returns its URL."""
        self.routes[path] = list(replies)
        return f"{self.url}{path}"

    def redirects(self, name: str, hops: int, data: bytes) -> str:
        """`hops` redirects (each to the next path, relative), then `data`; the first URL."""
        for hop in range(hops):
            self.serve(f"/{name}/{hop}", Status(302, f"/{name}/{hop + 1}"))
        self.serve(f"/{name}/{hops}", File(data))
        return f"{self.url}/{name}/0"

    def next_reply(self, path: str) -> Reply | None:
        replies = self.routes.get(path)
        if not replies:
            return None
        return replies.pop(0) if len(replies) > 1 else replies[0]


@contextmanager
def serving() -> Iterator[Origin]:
    """An origin listening until the block ends."""
    state: dict[str, Origin] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            origin = state["origin"]
            origin.requests.append(self.path)
            reply = origin.next_reply(self.path)
            try:
                _answer(self, reply)
            except OSError:  # the fetcher gave up (too large, cancelled): nothing to tell
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state["origin"] = Origin(f"http://127.0.0.1:{port}", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["origin"]
    finally:
        server.shutdown()
        server.server_close()


def _answer(handler: BaseHTTPRequestHandler, reply: Reply | None) -> None:
    if reply is None:
        reply = Status(404)
    if isinstance(reply, Status):
        handler.send_response(reply.status)
        if reply.location is not None:
            handler.send_header("Location", reply.location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return
    handler.send_response(200)
    if isinstance(reply, Gated):
        if reply.length:
            handler.send_header("Content-Length", str(len(reply.data)))
        else:
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(reply.data[: reply.split])
        handler.wfile.flush()
        reply.gate.wait(GATE_LIMIT)
        handler.wfile.write(reply.data[reply.split :])
        return
    handler.send_header("Content-Type", reply.content_type)
    if reply.disposition is not None:
        handler.send_header("Content-Disposition", reply.disposition)
    if reply.encoding is not None:
        handler.send_header("Content-Encoding", reply.encoding)
    if reply.length:
        handler.send_header("Content-Length", str(len(reply.data)))
    else:
        handler.close_connection = True  # HTTP/1.0: the body ends with the connection
    handler.end_headers()
    for start in range(0, len(reply.data), 64 * 1024):
        handler.wfile.write(reply.data[start : start + 64 * 1024])


def bomb(coding: str, size: int) -> bytes:
    """`size` zero bytes coded as `coding` (`gzip` or `zstd`): a body of a few KiB that a
    client decoding it would inflate to `size` bytes (made a MiB at a time, never whole)."""
    piece = bytes(1024 * 1024)
    if coding == "gzip":
        gzip = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        coded = [gzip.compress(piece) for _ in range(size // len(piece))]
        return b"".join([*coded, gzip.flush()])
    assert coding == "zstd", coding
    zstd = zstandard.ZstdCompressor().compressobj(size=size // len(piece) * len(piece))
    coded = [zstd.compress(piece) for _ in range(size // len(piece))]
    return b"".join([*coded, zstd.flush()])
