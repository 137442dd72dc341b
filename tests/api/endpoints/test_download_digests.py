"""RFC 9530 digests on result downloads: Repr-Digest of the whole result on 200, 206 and HEAD,
by key and by signed link; Want-Repr-Digest and Want-Content-Digest honoured; bad ones ignored.

Every expected value is computed here from the bytes actually downloaded."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import httpx
import pytest

from tests.api.endpoints.test_results import finished_job


def sha256_field(content: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(content).digest()).decode() + ":"


@pytest.fixture
async def result(client: httpx.AsyncClient, run_until_idle: Any) -> tuple[str, str, bytes]:
    """(the keyed URL, the signed link, the result's bytes as downloaded)."""
    job = await finished_job(client, run_until_idle, os.urandom(2 * 1024 * 1024 + 3))
    keyed = f"/v1/jobs/{job['id']}/result"
    signed = job["result"]["url"]
    assert "sig=" in signed and "expires=" in signed
    whole = await client.get(keyed)
    assert whole.status_code == 200
    return keyed, signed, whole.content


async def test_200_206_and_head_carry_the_same_repr_digest(
    client: httpx.AsyncClient, result: tuple[str, str, bytes]
) -> None:
    keyed, signed, content = result
    expected = sha256_field(content)
    for url in (keyed, signed):
        whole = await client.get(url)
        part = await client.get(url, headers={"Range": "bytes=10-1000009"})
        head = await client.head(url)
        assert (whole.status_code, part.status_code, head.status_code) == (200, 206, 200)
        assert whole.content == content and part.content == content[10:1000010]
        for response in (whole, part, head):
            assert response.headers["repr-digest"] == expected, (url, response.status_code)
            assert "content-digest" not in response.headers  # not asked for


async def test_want_repr_digest(client: httpx.AsyncClient, result: tuple[str, str, bytes]) -> None:
    keyed, signed, content = result
    expected = sha256_field(content)
    for want in ("sha-256=10, sha-512=3", "sha-512=10, sha-256=1"):
        for response in (
            await client.get(keyed, headers={"Want-Repr-Digest": want}),
            await client.head(signed, headers={"Want-Repr-Digest": want}),
        ):
            assert response.headers["repr-digest"] == expected
    for want in ("sha-512=3", "sha-256=0, sha-512=10"):  # only algorithms we don't offer
        for response in (
            await client.get(keyed, headers={"Want-Repr-Digest": want}),
            await client.get(signed, headers={"Want-Repr-Digest": want, "Range": "bytes=0-0"}),
            await client.head(keyed, headers={"Want-Repr-Digest": want}),
        ):
            assert response.status_code in (200, 206)
            assert "repr-digest" not in response.headers, want


async def test_want_content_digest_on_a_whole_200(
    client: httpx.AsyncClient, result: tuple[str, str, bytes]
) -> None:
    keyed, signed, content = result
    for url in (keyed, signed):
        response = await client.get(url, headers={"Want-Content-Digest": "sha-256=3"})
        assert response.status_code == 200
        assert response.headers["content-digest"] == sha256_field(response.content)
        assert response.headers["content-digest"] == response.headers["repr-digest"]
    # A 206 would need the range hashed before its headers, a HEAD has no content: neither has
    # one, and both still carry the whole result's Repr-Digest.
    asked = {"Want-Content-Digest": "sha-256=3"}
    part = await client.get(keyed, headers={**asked, "Range": "bytes=0-99"})
    head = await client.head(keyed, headers=asked)
    assert part.status_code == 206 and head.status_code == 200
    for response in (part, head):
        assert "content-digest" not in response.headers
        assert response.headers["repr-digest"] == sha256_field(content)
    unwanted = await client.get(keyed, headers={"Want-Content-Digest": "sha-512=3"})
    assert "content-digest" not in unwanted.headers


@pytest.mark.parametrize(
    "want",
    [
        b"SHA-256=1",
        b"sha-256=1,",
        b"sha-256=:AAA",
        b"((",
        b"sha-256=99999999999999999",
        b"\t",
        "sha-256=1, ü=1".encode(),  # raw bytes beyond ASCII
        b"sha-256=\xff",
    ],
)
async def test_a_malformed_want_field_is_ignored(
    client: httpx.AsyncClient, result: tuple[str, str, bytes], want: bytes
) -> None:
    keyed, _, content = result
    headers = {b"Want-Repr-Digest": want, b"Want-Content-Digest": want}
    for response in (
        await client.get(keyed, headers=headers),
        await client.get(keyed, headers={**headers, b"Range": b"bytes=-5"}),
        await client.head(keyed, headers=headers),
    ):
        assert response.status_code in (200, 206)
        assert response.headers["repr-digest"] == sha256_field(content)  # as if absent
        assert "content-digest" not in response.headers


async def test_no_digest_on_304_or_416(
    client: httpx.AsyncClient, result: tuple[str, str, bytes]
) -> None:
    keyed, _, content = result
    etag = f'"{hashlib.sha256(content).hexdigest()}"'
    not_modified = await client.get(keyed, headers={"If-None-Match": etag})
    unsatisfiable = await client.get(keyed, headers={"Range": f"bytes={len(content)}-"})
    assert (not_modified.status_code, unsatisfiable.status_code) == (304, 416)
    for response in (not_modified, unsatisfiable):
        assert "repr-digest" not in response.headers
        assert "content-digest" not in response.headers
