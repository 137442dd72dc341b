"""RFC 9530 digests of uploads: a client sends the input's sha-256 (`Repr-Digest` with a raw
body, a `sha256` field or query parameter); an upload whose bytes do not have it is refused
(`422 digest_mismatch`) and nothing of it is kept."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import httpx
import pytest

from tests.api.uploads.raw_bodies import JOBS, NothingKept, nothing_kept, post_raw
from tests.support.jobs import submit
from tests.support.problems import assert_problem
from tests.support.settings import PROFILES

__all__ = ["nothing_kept"]  # a fixture, used by name

# Past the in-memory spool (a file on disk); the same in every xdist worker (ids hold its digest).
CONTENT = bytes(range(256)) * (12 * 1024) + b"tail"
OTHER = hashlib.sha256(b"other bytes").digest()


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


def repr_digest(digest: bytes, *others: str) -> str:
    return ", ".join([*others, f"sha-256=:{base64.b64encode(digest).decode()}:"])


SHA = hashlib.sha256(CONTENT).digest()


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param({}, {"repr-digest": repr_digest(SHA)}, id="repr-digest"),
        pytest.param(
            {}, {"repr-digest": repr_digest(SHA, "sha-512=:AAAA:;x=1", "md5=:AA==:")},
            id="unknown-algorithms-beside-it",
        ),
        pytest.param({"sha256": SHA.hex().upper()}, {}, id="query"),
        pytest.param(
            {"sha256": SHA.hex()}, {"repr-digest": repr_digest(SHA)}, id="both-agreeing"
        ),
    ],
)  # fmt: skip
async def test_a_raw_body_with_its_digest_is_taken(
    client: httpx.AsyncClient, query: dict[str, str], headers: dict[str, str]
) -> None:
    response = await post_raw(client, CONTENT, query, headers)
    assert response.status_code == 202, response.text
    assert response.json()["input"]["sha256"] == SHA.hex()


async def test_a_form_with_its_sha256_field_is_taken(client: httpx.AsyncClient) -> None:
    response = await client.post(
        JOBS,
        data={"processor": "checksum", "sha256": SHA.hex()},
        files={"file": ("in.bin", CONTENT)},
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param({}, {"repr-digest": repr_digest(OTHER)}, id="repr-digest"),
        pytest.param({"sha256": OTHER.hex()}, {}, id="query"),
        pytest.param(
            {"sha256": SHA.hex()}, {"repr-digest": repr_digest(OTHER)}, id="one-of-two"
        ),
    ],
)  # fmt: skip
async def test_a_raw_body_that_does_not_match_is_refused_and_not_kept(
    nothing_kept: NothingKept,
    client: httpx.AsyncClient,
    query: dict[str, str],
    headers: dict[str, str],
) -> None:
    response = await post_raw(client, CONTENT, query, headers)
    assert_problem(response, 422, "digest_mismatch")
    await nothing_kept()


@pytest.mark.parametrize("size", [5, 3 * 1024 * 1024])  # in memory, on disk
async def test_a_form_that_does_not_match_its_sha256_is_refused_and_not_kept(
    nothing_kept: NothingKept, client: httpx.AsyncClient, size: int
) -> None:
    response = await client.post(
        JOBS,
        data={"processor": "checksum", "sha256": OTHER.hex()},
        files={"file": ("in.bin", os.urandom(size))},
    )
    problem = assert_problem(response, 422, "digest_mismatch")
    assert OTHER.hex() in problem["detail"]
    await nothing_kept()


async def test_a_digest_of_an_unknown_algorithm_alone_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    response = await post_raw(client, b"abc", headers={"repr-digest": "sha-512=:AAAA:"})
    assert response.status_code == 202, response.text


async def test_a_forms_repr_digest_is_the_forms_not_the_files_and_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    # RFC 9530: on a multipart request it would describe the whole form; the file's digest
    # goes in the `sha256` field.
    response = await submit(client, b"abc", headers={"repr-digest": repr_digest(OTHER)})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("sha-256=abc", id="not-bytes"),
        pytest.param("sha-256=:AAAA:", id="short"),
        pytest.param("sha-256=:not base64:", id="not-base64"),
        pytest.param("SHA-256=:AAAA:", id="upper-case-key"),
        pytest.param("sha-256=:" + "A" * 5000 + ":", id="too-long"),
        pytest.param(repr_digest(SHA) + ",", id="trailing-comma"),
    ],
)
async def test_a_malformed_repr_digest_is_400_and_keeps_nothing(
    nothing_kept: NothingKept, client: httpx.AsyncClient, header: str
) -> None:
    response = await post_raw(client, CONTENT, headers={"repr-digest": header})
    assert_problem(response, 400, "malformed_request")
    await nothing_kept()


@pytest.mark.parametrize(
    "value", ["abc", "g" * 64, SHA.hex() + "0"], ids=["short", "not-hex", "long"]
)
async def test_a_sha256_that_is_not_hex_is_a_validation_error(
    nothing_kept: NothingKept, client: httpx.AsyncClient, value: str
) -> None:
    response = await post_raw(client, b"abc", {"sha256": value})
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"][0]["loc"] == ["query", "sha256"]
    await nothing_kept()


async def test_a_mismatch_is_refused_before_the_processor_is_judged(
    nothing_kept: NothingKept, client: httpx.AsyncClient
) -> None:
    # Corrupted bytes say nothing about what the client meant: the digest answers first.
    query: dict[str, Any] = {"processor": "thumbnail", "sha256": OTHER.hex()}
    response = await post_raw(client, b"MZ\x90\x00" + bytes(100), query)
    assert_problem(response, 422, "digest_mismatch")
    await nothing_kept()
