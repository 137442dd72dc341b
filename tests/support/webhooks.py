"""A real webhook receiver (an HTTP server on 127.0.0.1 in a thread, with scripted replies),
and waiting for an app's deliveries to settle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.wait import wait_until_async


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    # Replies, in order; the last one repeats. An int is a status; ("sleep", s) stalls first;
    # ("trickle", s) sends a 200 one byte every s seconds; ("redirect", path) answers 302.
    replies: list[object] = field(default_factory=lambda: [200])

    def next_reply(self) -> object:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening until the block ends; it records every POST."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            hook = state["receiver"]
            hook.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
            reply = hook.next_reply()
            if isinstance(reply, tuple) and reply[0] == "sleep":
                time.sleep(reply[1])
                reply = 200
            if isinstance(reply, tuple) and reply[0] == "trickle":
                # Each byte of the reply well within a read timeout, the whole far past it.
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the sender gave up
                        break
                    time.sleep(reply[1])
                self.close_connection = True
                return
            if isinstance(reply, tuple) and reply[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", reply[1])
            else:
                assert isinstance(reply, int)
                self.send_response(reply)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()


# The signing secret of the webhook tests' apps.
SECRET = "hook-secret-0123456789-abcdefghijklmnop"


async def settled(app: FastAPI, client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """Run due deliveries until the job's callback is delivered or failed (bounded)."""

    async def delivered_or_failed() -> dict[str, Any] | None:
        await app.state.webhooks.deliver_due()
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["callback"]["state"] in ("delivered", "failed") else None

    return await wait_until_async(delivered_or_failed, timeout=20)
