"""Multipart abuse: framing, limits and headers. Each refusal is a 400 `malformed_multipart`
that leaves no job row, no stored file and no open spool behind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from filejob.api.uploads.route import MAX_BOUNDARY_BYTES, MAX_PART_HEADER_BYTES
from tests.support.multipart import (
    BOUNDARY,
    JOBS,
    MULTIPART,
    closing,
    field_part,
    file_part,
    upload_body,
)
from tests.support.problems import assert_problem
from tests.support.snapshots import Snapshot, assert_unchanged, take_snapshot
from tests.support.storage import blob_paths

CONTENT = b"payload bytes " * 64


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Every file byte goes to a disk spool at once, so "nothing left behind" is really tested.
    return {"spool_memory_bytes": 0}


async def post_raw(client: httpx.AsyncClient, body: bytes, content_type: str) -> httpx.Response:
    return await client.post(JOBS, content=body, headers={"content-type": content_type})


async def refused(client: httpx.AsyncClient, before: Snapshot, body: bytes, ctype: str) -> Any:
    response = await post_raw(client, body, ctype)
    problem = assert_problem(response, 400, "malformed_multipart")
    await assert_unchanged(before)
    return problem


async def test_multipart_without_boundary(client: httpx.AsyncClient, before: Snapshot) -> None:
    await refused(client, before, upload_body(CONTENT), "multipart/form-data")


async def test_empty_boundary_parameter(client: httpx.AsyncClient, before: Snapshot) -> None:
    await refused(client, before, upload_body(CONTENT), 'multipart/form-data; boundary=""')


async def test_truncated_body_without_closing_boundary(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    # The file part is complete up to its data; the closing delimiter never comes.
    body = field_part("processor", "checksum") + file_part(CONTENT)[: -len(b"\r\n")]
    await refused(client, before, body, MULTIPART)


async def test_body_cut_inside_the_closing_boundary(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    body = upload_body(CONTENT)[: -len(b"--\r\n")]  # "--boundary" but not its final "--"
    await refused(client, before, body, MULTIPART)


async def test_1001_parts(client: httpx.AsyncClient, before: Snapshot) -> None:
    # The file comes first, so a spool is already open on disk when the part limit
    # (FILEJOB_MAX_FORM_PARTS, 16 by default) stops the parse.
    fields = b"".join(field_part(f"f{i}", "v") for i in range(999))
    body = file_part(CONTENT) + field_part("processor", "checksum") + fields + closing()
    assert body.count(f"--{BOUNDARY}\r\n".encode()) == 1001
    await refused(client, before, body, MULTIPART)


async def test_two_file_parts(client: httpx.AsyncClient, before: Snapshot) -> None:
    # A second file (to smuggle in, or to swap the one that was checked) is refused outright.
    body = (
        field_part("processor", "checksum")
        + file_part(CONTENT)
        + file_part(b"MZ" + b"\x90\x00" * 100, b"second.exe")
        + closing()
    )
    await refused(client, before, body, MULTIPART)


async def test_part_with_a_1_mb_header(client: httpx.AsyncClient, before: Snapshot) -> None:
    # python-multipart stops a single header line past ~4 KiB before our 16 KiB total is reached.
    header = b"X-Padding: " + b"a" * (1024 * 1024)
    body = (
        field_part("processor", "checksum")
        + file_part(CONTENT, content_type=b"application/octet-stream\r\n" + header)
        + closing()
    )
    await refused(client, before, body, MULTIPART)


async def test_part_headers_over_16_kib_in_several_lines(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    # Each line stays under python-multipart's per-line limit; together they pass
    # MAX_PART_HEADER_BYTES, which is the guard that must fire here.
    headers = b"\r\n".join(b"X-Pad-%d: " % i + b"b" * 4000 for i in range(5))
    assert len(headers) > MAX_PART_HEADER_BYTES
    body = (
        field_part("processor", "checksum")
        + file_part(CONTENT, content_type=b"application/octet-stream\r\n" + headers)
        + closing()
    )
    problem = await refused(client, before, body, MULTIPART)
    assert str(MAX_PART_HEADER_BYTES) in problem["detail"]


async def test_field_part_over_64_kib(client: httpx.AsyncClient, before: Snapshot) -> None:
    params = "{" + " " * (1024 * 1024) + "}"  # valid JSON, 1 MiB: held in memory if allowed
    body = (
        file_part(CONTENT)
        + field_part("processor", "compress")
        + field_part("params", params)
        + closing()
    )
    await refused(client, before, body, MULTIPART)


async def test_junk_before_the_first_boundary(client: httpx.AsyncClient, before: Snapshot) -> None:
    # RFC 2046 §5.1.1 allows a preamble, but python-multipart does not: it expects the body to
    # begin with the delimiter. The server refuses rather than guessing where framing starts,
    # which is safe (no client that matters sends a preamble in form-data).
    body = b"this is a preamble \x00\xff junk\r\n" + upload_body(CONTENT)
    await refused(client, before, body, MULTIPART)


async def test_junk_after_the_closing_boundary_is_ignored(
    client: httpx.AsyncClient, before: Snapshot, run_until_idle: Callable[[], Any]
) -> None:
    # RFC 2046 allows an epilogue after the close delimiter; it carries no data. The server
    # accepts the well-formed body before it and stores exactly the file's bytes.
    body = upload_body(CONTENT) + b"epilogue junk \x00\xff\r\n--not-a-boundary\r\n"
    response = await post_raw(client, body, MULTIPART)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["input"]["size"] == len(CONTENT)
    assert job["input"]["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    await run_until_idle()
    done = (await client.get(f"{JOBS}/{job['id']}")).json()
    assert done["status"] == "succeeded"
    result = json.loads((await client.get(done["result"]["url"])).content)
    assert result["size"] == len(CONTENT)
    assert result["sha256"] == hashlib.sha256(CONTENT).hexdigest()


async def test_part_forged_after_the_closing_boundary_is_ignored(
    client: httpx.AsyncClient, before: Snapshot, run_until_idle: Callable[[], Any]
) -> None:
    # An epilogue that looks like more parts must not add or override fields: the processor
    # stays `checksum` and the file stays the first one.
    forged = field_part("processor", "compress") + file_part(b"forged", b"forged.bin") + closing()
    response = await post_raw(client, upload_body(CONTENT) + forged, MULTIPART)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["processor"] == "checksum"
    assert job["input"]["filename"] == "input.bin"
    assert job["input"]["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    await run_until_idle()
    after = take_snapshot(before.data_dir)
    assert after.job_rows == before.job_rows + 1
    assert set(after.files) - set(before.files) == set(blob_paths(job["id"]))


async def test_20_kb_content_type_header(client: httpx.AsyncClient, before: Snapshot) -> None:
    content_type = f"{MULTIPART}; " + "; ".join(f"p{i}=v" for i in range(4000))
    assert len(content_type) > 20_000
    await refused(client, before, upload_body(CONTENT), content_type)


async def test_boundary_longer_than_70_characters(
    client: httpx.AsyncClient, before: Snapshot
) -> None:
    boundary = "b" * (MAX_BOUNDARY_BYTES + 1)
    body = upload_body(CONTENT, boundary=boundary)  # well-formed but for the boundary length
    await refused(client, before, body, f"multipart/form-data; boundary={boundary}")


async def test_boundary_of_exactly_70_characters_is_accepted(client: httpx.AsyncClient) -> None:
    # The control for the case above: RFC 2046's maximum itself is fine.
    boundary = "b" * MAX_BOUNDARY_BYTES
    body = upload_body(CONTENT, boundary=boundary)
    response = await post_raw(client, body, f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/x-www-form-urlencoded",
        f"text/plain; boundary={BOUNDARY}",
        f"multipart/mixed; boundary={BOUNDARY}",
    ],
)
async def test_not_multipart_form_data_is_415_naming_it(
    client: httpx.AsyncClient, before: Snapshot, content_type: str
) -> None:
    body = (
        json.dumps({"processor": "checksum", "file": "x"}).encode()
        if content_type == "application/json"
        else upload_body(CONTENT)
    )
    response = await post_raw(client, body, content_type)
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert problem["accepted"] == ["multipart/form-data"]
    assert "multipart/form-data" in problem["detail"]
    await assert_unchanged(before)


@pytest.mark.parametrize(
    ("charset", "filename"),
    [
        pytest.param("undefined", b"input.bin", id="undefined-codec"),
        pytest.param("punycode", b"a.b.c.bin", id="punycode-dotted-name"),
        pytest.param("idna", b"." * 70 + b".bin", id="idna-empty-labels"),
        pytest.param("utf-7", b"+AGEAYgBj-.bin", id="utf-7"),
        pytest.param("unicode_escape", b"\\N{bad.bin", id="unicode-escape"),
    ],
)
async def test_a_form_charset_that_cannot_decode_its_parts_is_a_400(
    client: httpx.AsyncClient, before: Snapshot, charset: str, filename: bytes
) -> None:
    """Python's codecs raise more than UnicodeDecodeError (`undefined` always raises
    UnicodeError; punycode and idna raise it on dotted or empty labels): each is the body's
    fault, a problem+json 4xx, never a 500."""
    body = upload_body(CONTENT, filename=filename)
    response = await post_raw(client, body, f"{MULTIPART}; charset={charset}")
    if charset in ("undefined", "punycode"):  # these cannot decode the parts at all
        assert_problem(response, 400, "malformed_multipart")
        await assert_unchanged(before)
    else:  # a name the codec decodes, however oddly: stored as metadata, sanitised
        assert response.status_code in (202, 400), response.text
