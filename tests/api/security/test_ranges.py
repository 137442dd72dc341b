"""Range abuse on a finished job's result. Multi-range and invalid ranges get the whole body
(RFC 9110 §14.2 lets a server ignore Range), a range past the end a 416, and no header, however
long or strange, a 5xx. Nothing is deleted by any of it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from filejob.config import Settings
from tests.support.multipart import JOBS, MULTIPART, upload_body
from tests.support.problems import assert_problem
from tests.support.snapshots import Snapshot, assert_unchanged, take_snapshot

LONG = 10 * 1024  # a 10 KiB header


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # A server error must come back as a 500 response to assert on, not as a raised exception.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        yield client


@pytest.fixture
async def result(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any], settings: Settings
) -> dict[str, Any]:
    """A succeeded checksum job's `result`, plus its whole `body` and the `data_dir`."""
    response = await client.post(
        JOBS, content=upload_body(os.urandom(4096)), headers={"content-type": MULTIPART}
    )
    assert response.status_code == 202, response.text
    await run_until_idle()
    job = (await client.get(f"{JOBS}/{response.json()['id']}")).json()
    assert job["status"] == "succeeded"
    body = (await client.get(job["result"]["url"])).content
    assert len(body) == job["result"]["size"] > 150
    return {**job["result"], "body": body, "data_dir": settings.data_dir}


async def get_range(
    client: httpx.AsyncClient, result: dict[str, Any], header: str | bytes
) -> httpx.Response:
    if isinstance(header, bytes):  # sent byte for byte
        return await client.get(result["url"], headers={b"range": header})
    return await client.get(result["url"], headers={"range": header})


def assert_whole(response: httpx.Response, result: dict[str, Any]) -> None:
    assert response.status_code == 200, response.text
    assert "content-range" not in response.headers
    assert response.headers["content-length"] == str(result["size"])
    assert response.content == result["body"]


async def test_150_ranges_get_the_whole_body(
    client: httpx.AsyncClient, result: dict[str, Any]
) -> None:
    # Multi-range is ignored outright (no multipart/byteranges to assemble, no per-range work).
    header = "bytes=" + ",".join(f"{i}-{i}" for i in range(150))
    before = take_snapshot_for(result)
    assert_whole(await get_range(client, result, header), result)
    await assert_unchanged(before)


async def test_inverted_range_gets_the_whole_body(
    client: httpx.AsyncClient, result: dict[str, Any]
) -> None:
    assert_whole(await get_range(client, result, "bytes=50-10"), result)


async def test_overlapping_ranges_get_the_whole_body(
    client: httpx.AsyncClient, result: dict[str, Any]
) -> None:
    assert_whole(await get_range(client, result, "bytes=0-100,50-150,0-"), result)


async def test_range_starting_past_the_end_is_416(
    client: httpx.AsyncClient, result: dict[str, Any]
) -> None:
    before = take_snapshot_for(result)
    response = await get_range(client, result, f"bytes={result['size']}-")
    assert_problem(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == f"bytes */{result['size']}"
    await assert_unchanged(before)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("bytes=" + "1" * LONG + "-", "416", id="huge-start"),
        pytest.param("bytes=0-" + "9" * LONG, "206-all", id="huge-end"),
        pytest.param("bytes=-" + "9" * LONG, "206-all", id="huge-suffix"),
        pytest.param("bytes=" + "0" * LONG + "5-" + "0" * LONG + "9", "206-5-9", id="zero-padded"),
        pytest.param(
            "bytes=" + ",".join(f"{i}-" for i in range(LONG // 5)), "200", id="many-ranges"
        ),
        pytest.param("bytes=" + "-" * LONG, "200", id="dashes"),
        pytest.param("bytes=" + "x" * LONG, "200", id="garbage"),
        pytest.param("items=0-" + "9" * LONG, "200", id="other-unit"),
        pytest.param(b"bytes=\xb2-\xb3", "200", id="latin1-superscript-digits"),
    ],
)
async def test_long_or_strange_range_header_is_never_a_server_error(
    client: httpx.AsyncClient, result: dict[str, Any], header: str | bytes, expected: str
) -> None:
    assert len(header) >= LONG or isinstance(header, bytes)
    before = take_snapshot_for(result)
    response = await get_range(client, result, header)
    assert response.status_code < 500, response.text
    size = result["size"]
    if expected == "200":
        assert_whole(response, result)
    elif expected == "416":
        assert_problem(response, 416, "range_not_satisfiable")
        assert response.headers["content-range"] == f"bytes */{size}"
    elif expected == "206-all":
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        assert response.content == result["body"]
    else:
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 5-9/{size}"
        assert response.content == result["body"][5:10]
    await assert_unchanged(before)


def take_snapshot_for(result: dict[str, Any]) -> Snapshot:
    return take_snapshot(result["data_dir"])
