"""The HTTP layer of a real `filejob serve`, spoken to over raw sockets: a request's head (line,
headers, trailers, chunk lines) is bounded in bytes, fields and time; framing the server does not
implement, or an ambiguous Host, is refused; and a port already taken stops the server before it
says it is ready."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.multipart import upload_body
from tests.support.problems import assert_problem
from tests.support.servers import FILEJOB, start_server, stop_server

HEADER_TIMEOUT = 1  # FILEJOB_HEADER_TIMEOUT here, in seconds
MAX_HEADER_BYTES = 16 * 1024  # FILEJOB_MAX_HEADER_BYTES here
MAX_HEADERS = 50  # FILEJOB_MAX_HEADERS here
WAIT = 15.0  # a bound on every wait for an answer, well past HEADER_TIMEOUT
MiB = 1024 * 1024
REQUEST_LINE = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
UPLOAD_LINE = b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
MULTIPART = b"Content-Type: multipart/form-data; boundary=s3cur1ty-b0undary\r\n"


@dataclass
class Server:
    port: int
    pid: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("http-head")
    env = {
        "FILEJOB_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "FILEJOB_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "FILEJOB_MAX_HEADERS": str(MAX_HEADERS),
    }
    process, url = start_server(root / "data", root / "server.log", env)
    try:
        yield Server(int(url.rsplit(":", 1)[1]), process.pid)
    finally:
        stop_server(process)


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)


def read_response(sock: socket.socket, buffer: bytearray | None = None) -> httpx.Response:
    """One response from `sock` (Content-Length framed, as every answer here is), or an
    AssertionError if the server closed the connection first."""
    data = buffer if buffer is not None else bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {bytes(data)!r}"
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = [line.partition(":") for line in lines]
    headers = [(name.strip(), value.strip()) for name, _, value in fields]
    length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a response"
        body += chunk
    data[:] = body[length:]  # what follows belongs to the next response
    return httpx.Response(
        int(status_line.split()[1]), headers=headers, content=bytes(body[:length])
    )


def exchange(server: Server, request: bytes) -> httpx.Response:
    """Send `request` from a thread (the server may answer before it has read it all, and a
    client that only reads after sending would then block) and read the one answer."""
    with connect(server) as sock:
        sender = threading.Thread(target=_send_all, args=(sock, request), daemon=True)
        sender.start()
        try:
            return read_response(sock)
        finally:
            sender.join(WAIT)


def _send_all(sock: socket.socket, data: bytes) -> None:
    # Refused and closed before all of it went out: the answer tells why.
    with contextlib.suppress(OSError):
        sock.sendall(data)


def closed_or_answered(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by WAIT)."""
    received = bytearray()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            continue  # the loop's deadline decides
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError("the connection stayed open")
    return bytes(received)


def chunked(*chunks: bytes, trailers: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailers + b"\r\n"


# -- sizes and counts -----------------------------------------------------------------------


def test_one_huge_header_is_refused_with_431(server: Server) -> None:
    request = REQUEST_LINE + b"X-Big: " + b"a" * (2 * MiB) + b"\r\n\r\n"
    assert_problem(exchange(server, request), 431, "header_fields_too_large")


def test_too_many_headers_are_refused_with_431(server: Server) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(4 * MAX_HEADERS))
    assert_problem(
        exchange(server, REQUEST_LINE + fields + b"\r\n"), 431, "header_fields_too_large"
    )


def test_headers_over_the_byte_limit_in_all_are_refused_with_431(server: Server) -> None:
    # Each field is small and there are fewer than MAX_HEADERS; only their sum is too much.
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 1024) for i in range(MAX_HEADERS - 10))
    assert len(fields) > MAX_HEADER_BYTES
    assert_problem(
        exchange(server, REQUEST_LINE + fields + b"\r\n"), 431, "header_fields_too_large"
    )


def test_a_huge_request_line_is_refused_with_431(server: Server) -> None:
    request = b"GET /healthz?" + b"q" * (2 * MiB) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert_problem(exchange(server, request), 431, "header_fields_too_large")


def test_headers_just_under_the_limits_are_served(server: Server) -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 200) for i in range(MAX_HEADERS - 2))
    assert len(REQUEST_LINE + fields) < MAX_HEADER_BYTES
    response = exchange(server, REQUEST_LINE + fields + b"\r\n")
    assert response.status_code == 200, response.text


def test_memory_stays_bounded_under_four_64_mib_headers(server: Server) -> None:
    before = _peak_rss(server.pid)
    block = b"a" * MiB

    def flood() -> None:
        with connect(server) as sock:
            try:
                sock.sendall(REQUEST_LINE + b"X-Flood: ")
                for _ in range(64):
                    sock.sendall(block)
                sock.sendall(b"\r\n\r\n")
            except OSError:  # refused and closed: what a bounded server does
                return

    floods = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
    for thread in floods:
        thread.start()
    for thread in floods:
        thread.join(120)
    assert not any(thread.is_alive() for thread in floods)
    grown = _peak_rss(server.pid) - before
    assert grown < 50 * MiB, f"the server's peak RSS grew by {grown / MiB:.0f} MiB"


def _peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had, in bytes (a peak, so a burst
    freed again before we look still counts)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- time -----------------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with connect(server) as sock:
        answer = closed_or_answered(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_dribbled_head_is_answered_408(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST_LINE)
        deadline = time.monotonic() + WAIT
        field = 0
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], HEADER_TIMEOUT / 4)
            if readable:
                break
            field += 1
            try:
                sock.sendall(b"X-Slow-%d: v\r\n" % field)
            except OSError:
                break
        assert_problem(read_response(sock), 408, "request_timeout")


def test_an_idle_keep_alive_connection_between_requests_is_not_answered_408(
    server: Server,
) -> None:
    with connect(server) as sock:
        sock.sendall(REQUEST_LINE + b"\r\n")
        assert read_response(sock).status_code == 200
        # uvicorn's keep-alive timeout closes it, without an unsolicited response.
        assert closed_or_answered(sock) == b""


def test_blank_lines_between_requests_do_not_keep_a_connection_open(server: Server) -> None:
    # The parser skips blank lines between messages without starting one; each read used to
    # cancel uvicorn's keep-alive timeout, and nothing else ever closed the connection.
    with connect(server) as sock:
        sock.sendall(REQUEST_LINE + b"\r\n")
        assert read_response(sock).status_code == 200
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], HEADER_TIMEOUT / 4)
            if readable:
                break
            try:
                sock.sendall(b"\r\n")
            except OSError:
                break
        answer = closed_or_answered(sock)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer


# -- framing and Host -----------------------------------------------------------------------


def test_transfer_codings_other_than_chunked_are_refused_with_501(server: Server) -> None:
    request = UPLOAD_LINE + MULTIPART + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
    response = exchange(server, request + chunked(b"\x1f\x8b\x08\x00"))
    assert_problem(response, 501, "not_implemented")


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET /healthz HTTP/1.1\r\n", id="no-host"),
        pytest.param(REQUEST_LINE + b"Host: example.org\r\n", id="two-hosts"),
        pytest.param(REQUEST_LINE + b"Host: 127.0.0.1\r\n", id="same-host-twice"),
    ],
)
def test_a_request_without_exactly_one_host_is_refused_with_400(
    server: Server, request_head: bytes
) -> None:
    assert_problem(exchange(server, request_head + b"\r\n"), 400, "bad_request")


def test_http_1_0_may_omit_host(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert read_response(sock).status_code == 200


def test_a_malformed_request_is_answered_as_a_problem(server: Server) -> None:
    assert_problem(
        exchange(server, b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"), 400, "bad_request"
    )


def test_a_huge_chunk_extension_is_refused(server: Server) -> None:
    body = upload_body(b"payload")
    extension = b";ext=" + b"e" * (4 * MiB)
    request = (
        UPLOAD_LINE
        + MULTIPART
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x%s\r\n%s\r\n" % (len(body), extension, body)
        + b"0\r\n\r\n"
    )
    response = exchange(server, request)
    assert response.status_code in (400, 431), response.text
    assert_problem(response, response.status_code, response.json()["code"])


def test_huge_trailers_are_refused_with_431(server: Server) -> None:
    trailer = b"X-Trailer: " + b"t" * (4 * MiB) + b"\r\n"
    request = UPLOAD_LINE + MULTIPART + b"Transfer-Encoding: chunked\r\n\r\n"
    response = exchange(server, request + chunked(upload_body(b"payload"), trailers=trailer))
    assert_problem(response, 431, "header_fields_too_large")


def test_many_trailers_count_against_the_header_limit(server: Server) -> None:
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(MAX_HEADERS))
    request = UPLOAD_LINE + MULTIPART + b"Transfer-Encoding: chunked\r\n\r\n"
    response = exchange(server, request + chunked(upload_body(b"payload"), trailers=trailers))
    assert_problem(response, 431, "header_fields_too_large")


# -- what must keep working -----------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        for _ in range(3):
            sock.sendall(REQUEST_LINE + b"\r\n")
            assert read_response(sock, buffer).status_code == 200
        # Pipelined: two requests in one write, two answers in order.
        sock.sendall(REQUEST_LINE + b"\r\n" + REQUEST_LINE + b"\r\n")
        assert read_response(sock, buffer).status_code == 200
        assert read_response(sock, buffer).status_code == 200


def test_a_pipelined_oversized_request_closes_the_connection_after_the_earlier_answer(
    server: Server,
) -> None:
    oversized = REQUEST_LINE + b"X-Big: " + b"a" * (2 * MiB) + b"\r\n\r\n"
    with connect(server) as sock:
        sender = threading.Thread(
            target=_send_all, args=(sock, REQUEST_LINE + b"\r\n" + oversized), daemon=True
        )
        sender.start()
        buffer = bytearray()
        first = read_response(sock, buffer)
        rest = bytes(buffer) + closed_or_answered(sock)
        sender.join(WAIT)
    # The answer to the earlier request is whole and says the connection ends; the oversized
    # one gets none (writing a 431 could have cut into an answer still going out).
    assert first.status_code == 200
    assert first.headers["connection"] == "close"
    assert rest == b""


def test_a_chunked_upload_with_a_small_trailer_is_accepted(server: Server) -> None:
    body = upload_body(os.urandom(200_000))
    pieces = [body[i : i + 7000] for i in range(0, len(body), 7000)]
    request = UPLOAD_LINE + MULTIPART + b"Transfer-Encoding: chunked\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(request)
        for piece in pieces:  # in many writes, so chunk lines straddle reads
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\nX-Checksum: none\r\n\r\n")
        response = read_response(sock)
    assert response.status_code == 202, response.text
    assert response.json()["status"] in ("queued", "running", "succeeded")


def test_trailers_within_the_limit_are_accepted_when_they_arrive_alone(server: Server) -> None:
    # Trailers read on their own are counted as bytes and as fields: once each, not twice.
    trailers = b"".join(
        b"X-T%d: %s\r\n" % (i, b"t" * 1000) for i in range(MAX_HEADER_BYTES * 3 // 4000)
    )
    with connect(server) as sock:
        sock.sendall(UPLOAD_LINE + MULTIPART + b"Transfer-Encoding: chunked\r\n\r\n")
        sock.sendall(chunked(upload_body(b"payload"))[: -len(b"\r\n")])  # up to the last chunk
        time.sleep(0.2)  # so that the trailers come in a read of their own, and end in another
        sock.sendall(trailers)
        time.sleep(0.2)
        sock.sendall(b"\r\n")
        response = read_response(sock)
    assert response.status_code == 202, response.text


def test_a_body_refused_after_its_answer_gets_no_second_answer(server: Server) -> None:
    # /healthz answers a POST with 405 without reading the body; the hostile rest of that body
    # closes the connection, and no answer follows the one already sent.
    with connect(server) as sock:
        sock.sendall(
            b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        buffer = bytearray()
        assert read_response(sock, buffer).status_code == 405
        _send_all(sock, b"1;" + b"e" * (4 * MiB) + b"\r\nx\r\n0\r\n\r\n")
        assert bytes(buffer) + closed_or_answered(sock) == b""


# -- the listening socket -------------------------------------------------------------------


def test_a_taken_port_stops_the_server_before_it_is_ready(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FILEJOB_DATA_DIR": str(tmp_path / "data"),
        "FILEJOB_LOG_LEVEL": "info",
        "FILEJOB_MIN_FREE_BYTES": "0",
    }
    subprocess.run([FILEJOB, "db", "upgrade"], env=env, check=True, capture_output=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [FILEJOB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"127.0.0.1:{port}" in result.stderr, output
    assert "address already in use" in result.stderr, output
    assert "filejob ready" not in output
