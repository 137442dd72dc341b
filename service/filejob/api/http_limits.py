"""Limits on what a client may send before the app sees a request: uvicorn's httptools protocol,
counting a request's head as it arrives (the app cannot: it runs once the head is parsed).

Contract, per connection (each refusal is problem+json with a stable `code` and
`Connection: close`):

- The request line and header fields, and a chunked body's trailer fields with them, hold at most
  `max_header_bytes` bytes and `max_headers` fields, else 431 `header_fields_too_large`. Bytes
  are counted as they are read, so an unfinished field is refused once it passes the limit, not
  once it ends. (Framing that starts in the middle of a read, after body bytes or a pipelined
  request, is counted from the next read on: it may run over by the rest of that one read.)
- A head must arrive within `header_timeout` seconds of the connection's opening (first request)
  or of its first byte (later ones), else 408 `request_timeout`; a connection that sent nothing
  at all is closed without an answer. Between requests uvicorn's keep-alive timeout applies.
- `Transfer-Encoding` other than `chunked` alone: 501 `not_implemented`. An HTTP/1.1 request
  without exactly one `Host`, or with two in any version: 400 `bad_request`, as is a request
  httptools cannot parse and a chunk-size line (extensions included) over `CHUNK_LINE_BYTES`.
- Trailer fields are counted and dropped (as uvicorn's h11 protocol drops them): they never
  reach the request's headers, which the app is already reading.
- After an answer the server stops writing (FIN) and discards what the client still sends, for
  up to `LINGER_SECONDS` or `LINGER_BYTES`, then closes: closing with unread input would reset
  the connection and could destroy the answer before the client reads it (nginx's lingering
  close, Go's closeWriteAndWait). A refusal that cannot be answered because an earlier response
  on the connection is still going out closes the connection after that response instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from filejob.config import Settings
from filejob.errors import PROBLEM_JSON

log = logging.getLogger("filejob.http")

# Node's llhttp binding and hyper refuse chunk extensions past 16 KiB; nothing needs more.
CHUNK_LINE_BYTES = 16 * 1024
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024

# Where the parser is in a message; the first three are framing, bounded in bytes.
_HEAD = 0  # request line and headers (or nothing yet, between requests)
_CHUNK_LINE = 1  # a chunk-size line, with its extensions
_CHUNK_START = 2  # after a chunk-size line: chunk data, or trailers after the last one
_BODY = 3  # body bytes: bounded by the upload limits, not here


@dataclass(frozen=True)
class HeadLimits:
    header_timeout: float
    max_header_bytes: int
    max_headers: int

    @classmethod
    def of(cls, settings: Settings) -> HeadLimits:
        return cls(settings.header_timeout, settings.max_header_bytes, settings.max_headers)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    title: str
    detail: str
    extra: tuple[tuple[str, Any], ...] = ()

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        body = json.dumps(
            {
                "type": f"urn:filejob:problem:{self.code}",
                "title": self.title,
                "status": self.status,
                "detail": self.detail,
                "code": self.code,
                **dict(self.extra),
            }
        ).encode()
        head = [STATUS_LINE[self.status]]
        head += [name + b": " + value + b"\r\n" for name, value in default_headers]
        head.append(b"content-type: %s\r\n" % PROBLEM_JSON.encode())
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        return b"".join(head) + body


class _Refused(Exception):
    """Raised from a parser callback to stop the parser; the refusal is kept on the protocol."""


def _bad_request(detail: str) -> Refusal:
    return Refusal(400, "bad_request", "Bad request", detail)


INVALID_REQUEST = _bad_request("The request is not valid HTTP/1.1.")
HOST_REQUIRED = _bad_request("An HTTP/1.1 request needs exactly one Host header field.")
CHUNK_LINE_TOO_LONG = _bad_request(
    f"A chunk-size line, extensions included, may hold at most {CHUNK_LINE_BYTES} bytes."
)
TRANSFER_CODING = Refusal(
    501,
    "not_implemented",
    "Not implemented",
    "The only transfer coding implemented is `chunked` alone "
    "(send compressed content as it is, with Content-Encoding).",
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; see `protocol_with`."""

    limits: ClassVar[HeadLimits]
    _max_bytes: ClassVar[int]  # the limits' figures, one attribute lookup away
    _max_fields: ClassVar[int]
    too_large: ClassVar[Refusal]
    too_slow: ClassVar[Refusal]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _HEAD
        self._framed = 0  # raw bytes read in the current framing phase (from a read's start)
        self._head_bytes = 0  # request line, header and trailer fields of this message
        self._fields = 0
        self._head_begun = False  # a message has begun and its headers are not complete
        self._heads = 0  # heads completed on this connection
        self._trailer_bytes = 0  # what trailers may hold, fixed at each chunk-size line
        self._heard = False  # the client has sent at least one byte
        self._refusal: Refusal | None = None
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._discarded = 0

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a byte must not stay

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._refused:
            self.transport.close()
        else:
            super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._discard(len(data))
            return
        self._unset_keepalive_if_required()
        self._heard = True
        in_head, heads = self._phase == _HEAD, self._heads
        rest: bytes | memoryview = data
        while rest:
            limit = self._max_bytes if self._phase == _HEAD else self._framing_limit()
            if limit is None:
                piece, rest = rest, b""
            else:
                room = limit - self._framed
                if room <= 0:
                    self._refuse(self._framing_refusal())
                    return
                if len(rest) > room:
                    rest = memoryview(rest)  # slices of a view copy nothing
                    piece, rest = rest[:room], rest[room:]
                else:
                    piece, rest = rest, b""
                self._framed += len(piece)
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                self._refuse(self._refusal or INVALID_REQUEST)
                return
            limit = self._framing_limit()
            if limit is not None and self._framed >= limit:
                # Still framing with the whole allowance read: the framing is longer.
                self._refuse(self._framing_refusal())
                return
        # A read that leaves a head unfinished starts its clock: a message has begun, or the
        # read began in a head and finished none (blank lines: the parser skips them silently).
        if (
            self._phase == _HEAD
            and self._head_timer is None
            and (self._head_begun or (in_head and self._heads == heads))
        ):
            self._arm_head_timer()

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._fields = 0
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self._max_bytes:
            self._stop(self.too_large)
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._fields += 1
        if self._head_bytes > self._max_bytes or self._fields > self._max_fields:
            self._stop(self.too_large)
        if self._phase != _HEAD:  # a trailer: counted, not added to headers already handed out
            return
        # uvicorn's on_header, inlined: this runs for every header of every request.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._cancel_head_timer()
        self._head_begun = False
        self._heads += 1
        self._phase = _CHUNK_LINE if self._check_head() else _BODY
        self._framed = 0
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self._enter(_CHUNK_START)
        # Trailers may follow: they get what the head left of the budget. Fixed here, as the
        # trailers counted by on_header must not also shrink the allowance of raw bytes.
        self._trailer_bytes = self._max_bytes - self._head_bytes

    def on_body(self, body: bytes) -> None:
        self._phase = _BODY
        super().on_body(body)

    def on_chunk_complete(self) -> None:
        self._enter(_CHUNK_LINE)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase, self._framed = _HEAD, 0

    # -- limits -------------------------------------------------------------------------

    def _check_head(self) -> bool:
        """Refuse a head this server must not guess at; returns whether the body is chunked."""
        hosts = 0
        codings: list[bytes] = []
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
        if hosts > 1 or (hosts == 0 and self.parser.get_http_version() == "1.1"):
            self._stop(HOST_REQUIRED)
        if codings and codings != [b"chunked"]:
            self._stop(TRANSFER_CODING)
        return bool(codings)

    def _enter(self, phase: int) -> None:
        self._phase = phase
        self._framed = 0

    def _framing_limit(self) -> int | None:
        if self._phase == _HEAD:
            return self._max_bytes
        if self._phase == _CHUNK_LINE:
            return CHUNK_LINE_BYTES
        if self._phase == _CHUNK_START:  # chunk data, or trailers after the last chunk
            return self._trailer_bytes
        return None

    def _framing_refusal(self) -> Refusal:
        return CHUNK_LINE_TOO_LONG if self._phase == _CHUNK_LINE else self.too_large

    def _stop(self, refusal: Refusal) -> None:
        self._refusal = refusal
        raise _Refused(refusal.code)

    # -- timers -------------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._refused or self._phase != _HEAD or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier response is still going out; the next head may wait for it.
            self._arm_head_timer()
            return
        if not self._heard:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self._refuse(self.too_slow)

    # -- refusing -----------------------------------------------------------------------

    def _refuse(self, refusal: Refusal) -> None:
        self._refused = True
        self._cancel_head_timer()
        log.info(
            "refused a request from %s: %d %s",
            "{}:{}".format(*self.client) if self.client else "?",
            refusal.status,
            refusal.code,
        )
        cycle = self.cycle
        if self._phase == _HEAD:  # the refused request has no cycle; `cycle` is an earlier one
            if cycle is not None and not cycle.response_complete:
                # Earlier requests are still being answered: let them finish, then close (the
                # refused request gets no answer; reading stops here).
                cycle.keep_alive = False
                self.flow.pause_reading()
                return
        else:  # refused in the body of `cycle`'s request
            assert cycle is not None
            if not cycle.response_complete:
                # The app reading this body sees a disconnect; whatever it sends is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
            if cycle.response_started or self.pipeline:
                # Its answer (or an earlier request's) has begun: a second one cannot follow.
                self.transport.close()
                return
        self.transport.write(refusal.response(self.server_state.default_headers))
        self._linger_then_close()

    def _linger_then_close(self) -> None:
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _discard(self, size: int) -> None:
        self._discarded += size
        if self._discarded > LINGER_BYTES:
            self.transport.close()


def protocol_with(limits: HeadLimits) -> type[LimitedHttpToolsProtocol]:
    """The protocol class for uvicorn's `Config(http=...)`, bound to these limits."""
    too_large = Refusal(
        431,
        "header_fields_too_large",
        "Request header fields too large",
        f"The request line and header fields (trailers included) may hold at most "
        f"{limits.max_header_bytes} bytes and {limits.max_headers} fields.",
        (("max_header_bytes", limits.max_header_bytes), ("max_headers", limits.max_headers)),
    )
    too_slow = Refusal(
        408,
        "request_timeout",
        "The request head arrived too slowly",
        f"The request line and headers must arrive within {limits.header_timeout:g} s.",
    )
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "limits": limits,
            "_max_bytes": limits.max_header_bytes,
            "_max_fields": limits.max_headers,
            "too_large": too_large,
            "too_slow": too_slow,
        },
    )
