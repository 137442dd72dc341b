"""Hostile bodies: too large (declared or streamed), too slow, and bad fields. Every refusal
leaves no job row, no stored file and no open spool behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from filejob.api.uploads.route import FORM_OVERHEAD_BYTES
from tests.support.multipart import BOUNDARY, JOBS, MULTIPART, closing, field_part, upload_body
from tests.support.problems import assert_problem
from tests.support.snapshots import Snapshot, assert_unchanged

LIMIT = 64 * 1024  # FILEJOB_MAX_UPLOAD_BYTES here
CHUNK = 64 * 1024
CHUNKS = 16  # 1 MiB in all: well past the limit and its form overhead
FILE_HEAD = (
    field_part("processor", "checksum")
    + f"--{BOUNDARY}\r\n".encode()
    + b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
    + b"Content-Type: application/octet-stream\r\n\r\n"
)
FILE_TAIL = b"\r\n" + closing()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "max_upload_bytes": LIMIT,
        "spool_memory_bytes": 0,
        "body_timeout": 0.5,
        "body_deadline": 2.0,
    }


class CountingBody:
    """An upload body: a file part of `CHUNKS` chunks, counting how many chunks were pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield FILE_HEAD
        for _ in range(CHUNKS):
            self.pulled += 1
            yield os.urandom(CHUNK)
        yield FILE_TAIL

    @property
    def size(self) -> int:
        return len(FILE_HEAD) + CHUNKS * CHUNK + len(FILE_TAIL)


async def test_content_length_over_the_limit_is_413_before_reading(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    body = CountingBody()
    response = await client.post(
        JOBS,
        content=body,
        headers={"content-type": MULTIPART, "content-length": str(body.size)},
    )
    assert_problem(response, 413, "payload_too_large")
    assert body.pulled == 0  # refused from the header: not one chunk of file data was read
    await assert_unchanged(before)


async def test_chunked_body_growing_past_the_limit_is_413_while_streaming(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    body = CountingBody()  # no Content-Length: httpx sends it chunked
    response = await client.post(JOBS, content=body, headers={"content-type": MULTIPART})
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    # Stopped once past the limit and the form overhead, long before the end of the body.
    assert body.pulled <= (LIMIT + FORM_OVERHEAD_BYTES) // CHUNK + 1 < CHUNKS
    await assert_unchanged(before)


async def test_understated_content_length_is_413_while_streaming(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    # The limit counts the bytes that arrive, not the ones announced. (A real server would
    # cut the body at the declared length; the app must not rely on that.)
    body = CountingBody()
    response = await client.post(
        JOBS, content=body, headers={"content-type": MULTIPART, "content-length": "1000"}
    )
    assert_problem(response, 413, "payload_too_large")
    assert body.pulled < CHUNKS
    await assert_unchanged(before)


async def test_file_over_the_limit_inside_the_form_overhead_is_413(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    # Small enough to pass the body limit (file limit + form overhead), too big as a file.
    body = upload_body(os.urandom(LIMIT + 1))
    assert len(body) < LIMIT + FORM_OVERHEAD_BYTES
    response = await client.post(JOBS, content=body, headers={"content-type": MULTIPART})
    assert_problem(response, 413, "payload_too_large")
    await assert_unchanged(before)


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param("12abc", id="not-a-number"),
        pytest.param("-5", id="negative"),
        pytest.param("\u00b2", id="latin1-superscript-two"),
        pytest.param("9" * 5000, id="5000-digits"),
    ],
)
async def test_nonsense_content_length_is_refused_not_a_server_error(
    app: Any, before: Snapshot, declared: str
) -> None:
    # A front server (uvicorn) would refuse most of these itself; the app must not crash
    # on them either. httpx is told the header's raw bytes, as a hostile client sends them.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        response = await client.post(
            JOBS,
            content=upload_body(b"abc"),
            headers={
                b"content-type": MULTIPART.encode(),
                b"content-length": declared.encode("latin-1"),
            },
        )
    assert response.status_code < 500, response.text
    if declared.isascii() and declared.isdigit():
        assert_problem(response, 413, "payload_too_large")
    else:
        assert_problem(response, 400, "malformed_request")
    await assert_unchanged(before)


async def test_stalled_body_is_408(client: httpx.AsyncClient, before: Snapshot) -> None:
    stalled = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield FILE_HEAD
        yield os.urandom(4096)  # a spool is open on disk now
        stalled.set()
        await asyncio.sleep(5)  # longer than body_timeout (0.5 s); cancelled by the server
        yield FILE_TAIL

    response = await client.post(JOBS, content=body(), headers={"content-type": MULTIPART})
    assert stalled.is_set()
    assert_problem(response, 408, "request_timeout")
    await assert_unchanged(before)


async def test_a_body_dribbled_past_the_whole_body_deadline_is_408(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    """Each gap is well under body_timeout (0.5 s), so only the whole-body deadline (2 s)
    can end it; unbounded, this body would take 100 s."""
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield FILE_HEAD
        for _ in range(1000):
            sent += 1
            yield b"x"
            await asyncio.sleep(0.1)
        yield FILE_TAIL

    response = await client.post(JOBS, content=body(), headers={"content-type": MULTIPART})
    problem = assert_problem(response, 408, "request_timeout")
    assert "within 2 seconds" in problem["detail"]
    assert sent < 1000
    await assert_unchanged(before)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param('{"format": "rar"}', id="unknown-format"),
        pytest.param('{"format": "gzip", "level": 1e400}', id="huge-number"),
        pytest.param(
            '{"a": ' * 2000 + "1" + "}" * 2000,  # 12 KB, well inside the 64 KiB field limit
            id="deeply-nested",
        ),
        pytest.param('{"format": "gzip", "__proto__": {"x": 1}}', id="extra-key"),
        pytest.param('{"format": "gzip", "level": ' + "9" * 5000 + "}", id="5000-digit-int"),
        pytest.param('{"format": "gzip", "level": -' + "9" * 5000 + "}", id="5000-digit-neg"),
    ],
)
async def test_bad_params_are_422(client: httpx.AsyncClient, before: Snapshot, params: str) -> None:
    body = (
        field_part("processor", "compress")
        + field_part("params", params)
        + upload_body(os.urandom(4096))[len(field_part("processor", "checksum")) :]
    )
    response = await client.post(JOBS, content=body, headers={"content-type": MULTIPART})
    assert_problem(response, 422, "invalid_params")
    await assert_unchanged(before)


@pytest.mark.parametrize(
    "processor",
    [
        pytest.param("nope", id="unknown"),
        pytest.param("../checksum", id="path-like"),
        pytest.param("checksum\x00", id="nul-suffix"),
        pytest.param("CHECKSUM", id="other-case"),
        pytest.param("__init__", id="dunder"),
    ],
)
async def test_unknown_processor_is_422(
    client: httpx.AsyncClient, before: Snapshot, processor: str
) -> None:
    body = upload_body(os.urandom(4096), processor)
    response = await client.post(JOBS, content=body, headers={"content-type": MULTIPART})
    problem = assert_problem(response, 422, "unknown_processor")
    assert "checksum" in problem["available"]
    await assert_unchanged(before)
