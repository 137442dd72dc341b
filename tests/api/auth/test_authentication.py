"""Bearer keys: required on every /v1 route, checked when presented, revocable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.support.auth import KeyClient
from tests.support.jobs import submit, wait_for_status
from tests.support.multipart import CountingBody

V1_REQUESTS = [
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/some-id"),
    ("DELETE", "/v1/jobs/some-id"),
    ("GET", "/v1/jobs/some-id/result"),
    ("HEAD", "/v1/jobs/some-id/result"),
    ("GET", "/v1/jobs/some-id/result-link"),
    ("GET", "/v1/processors"),
    ("POST", "/v1/jobs"),
]


@pytest.mark.parametrize(("method", "path"), V1_REQUESTS)
async def test_every_v1_route_needs_a_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="filejob"'
    if method != "HEAD":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer fj_not-a-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "fj_no-scheme",
        "Bearer " + "x" * 5000,
    ],
)
async def test_an_invalid_key_is_refused(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/v1/jobs", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_an_upload_without_a_key_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient, data_dir: Any
) -> None:
    body = CountingBody(64)
    response = await client.post(
        "/v1/jobs",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b", "content-length": "4194304"},
    )
    assert response.status_code == 401
    assert body.pulled <= 1  # refused on the headers


async def test_a_key_works_and_health_needs_none(
    client: httpx.AsyncClient, key_client: KeyClient, run_until_idle: Callable[[], Any]
) -> None:
    alice = await key_client("alice")
    assert (await client.get("/healthz")).status_code == 200
    assert (await alice.get("/v1/processors")).status_code == 200
    created = await submit(alice, b"hello")
    assert created.status_code == 202
    await run_until_idle()
    job = await wait_for_status(alice, created.json()["id"], "succeeded")
    assert (await alice.get(f"/v1/jobs/{job['id']}/result")).content


async def test_a_revoked_key_stops_working(app: FastAPI, key_client: KeyClient) -> None:
    alice = await key_client("alice")
    assert (await alice.get("/v1/jobs")).status_code == 200
    assert await app.state.services.auth.keys.revoke(alice.key.id)  # type: ignore[attr-defined]
    response = await alice.get("/v1/jobs")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


async def test_keys_are_stored_hashed(
    app: FastAPI, key_client: KeyClient, data_dir: Any, profile: str
) -> None:
    alice = await key_client("alice")
    token = alice.headers["authorization"].removeprefix("Bearer ")
    async with app.state.services.jobs.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM api_keys"))).all()
    stored = repr(rows).encode()
    if profile == "embedded":  # every byte SQLite wrote, the WAL included
        wal = data_dir / "filejob.db-wal"
        stored += (data_dir / "filejob.db").read_bytes() + (
            wal.read_bytes() if wal.exists() else b""
        )
    assert token.encode() not in stored
    assert token[12:].encode() not in stored  # not even the part after the shown prefix
    listed = await app.state.services.auth.keys.list()
    assert [k.name for k in listed] == ["alice"]


class TestAuthOff:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "off"}

    async def test_anonymous_callers_work_and_a_presented_key_still_counts(
        self, client: httpx.AsyncClient, key_client: KeyClient, run_until_idle: Callable[[], Any]
    ) -> None:
        anonymous = await submit(client, b"anonymous")
        assert anonymous.status_code == 202
        alice = await key_client("alice")
        own = await submit(alice, b"alice's")
        assert own.status_code == 202
        # Each sees only its own: a key identifies its owner even when auth is off.
        assert [j["id"] for j in (await client.get("/v1/jobs")).json()["items"]] == [
            anonymous.json()["id"]
        ]
        assert [j["id"] for j in (await alice.get("/v1/jobs")).json()["items"]] == [
            own.json()["id"]
        ]
        bad = await client.get("/v1/jobs", headers={"Authorization": "Bearer fj_wrong"})
        assert bad.status_code == 401
        await run_until_idle()
