"""Signed result links: a capability for one result, until it expires; secrets rotate."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from filejob.auth.links import LinkSigner
from tests.support.auth import OLD_SECRET, SECRET, KeyClient
from tests.support.jobs import submit, wait_for_status


@pytest.fixture
async def finished(
    key_client: KeyClient, run_until_idle: Callable[[], Any]
) -> tuple[Any, dict[str, Any]]:
    alice = await key_client("alice")
    created = await submit(alice, b"some input")
    await run_until_idle()
    return alice, await wait_for_status(alice, created.json()["id"], "succeeded")


async def test_the_jobs_result_url_works_without_a_key(
    client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    alice, job = finished
    url = job["result"]["url"]
    assert url.startswith(f"/v1/jobs/{job['id']}/result?expires=")
    expires = datetime.fromisoformat(job["result"]["url_expires_at"]).timestamp()
    assert time.time() + 3600 <= expires <= time.time() + 3600 + 300
    direct = await alice.get(f"/v1/jobs/{job['id']}/result")
    by_link = await client.get(url)  # `client` sends no key
    assert by_link.status_code == 200
    assert by_link.content == direct.content
    head = await client.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(direct.content))


async def test_the_result_url_is_stable_between_polls(
    finished: tuple[Any, dict[str, Any]],
) -> None:
    alice, job = finished
    first = await alice.get(f"/v1/jobs/{job['id']}")
    again = await alice.get(
        f"/v1/jobs/{job['id']}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304  # the link's expiry is rounded, so the ETag holds


def _with(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url, job: _with(url, sig="0" * 64),
        lambda url, job: _with(url, sig="zz"),
        lambda url, job: _with(url, sig=""),
        lambda url, job: _with(url, expires=str(int(time.time()) + 10**6)),
        lambda url, job: _with(url, expires="soon"),
        lambda url, job: urlsplit(url).path + "?sig=" + parse_qs(urlsplit(url).query)["sig"][0],
        lambda url, job: url.replace(job["id"], "A" * 22),
    ],
    ids=[
        "zeroed-sig",
        "short-sig",
        "empty-sig",
        "longer-expiry",
        "bad-expiry",
        "no-expiry",
        "other-job",
    ],
)
async def test_a_tampered_link_is_refused(
    client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]], tamper: Any
) -> None:
    _, job = finished
    response = await client.get(tamper(job["result"]["url"], job))
    assert response.status_code == 403
    assert response.json()["code"] == "invalid_signature"


async def test_an_expired_link_is_refused(
    app: FastAPI, client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    _, job = finished
    signer: LinkSigner = app.state.services.links
    link = signer.result_link(job["id"], ttl=60, now=time.time() - 120)
    response = await client.get(link.url)
    assert response.status_code == 403
    assert response.json()["code"] == "link_expired"


async def test_a_link_grants_the_result_only(
    client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    _, job = finished
    query = urlsplit(job["result"]["url"]).query
    for path in (f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/result-link", "/v1/jobs"):
        assert (await client.get(f"{path}?{query}")).status_code == 401
    assert (await client.delete(f"/v1/jobs/{job['id']}?{query}")).status_code == 401


async def test_result_link_issues_a_fresh_link_with_its_ttl(
    client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]]
) -> None:
    alice, job = finished
    before = time.time()
    issued = (await alice.get(f"/v1/jobs/{job['id']}/result-link", params={"ttl": 90})).json()
    expires = datetime.fromisoformat(issued["expires_at"]).timestamp()
    assert before + 90 <= expires <= time.time() + 91
    assert (await client.get(issued["url"])).status_code == 200
    capped = (await alice.get(f"/v1/jobs/{job['id']}/result-link", params={"ttl": 10**9})).json()
    assert datetime.fromisoformat(capped["expires_at"]).timestamp() <= time.time() + 7 * 86400 + 1
    bad = await alice.get(f"/v1/jobs/{job['id']}/result-link", params={"ttl": 0})
    assert bad.status_code == 422


async def test_result_link_of_an_unfinished_job_is_a_conflict(key_client: KeyClient) -> None:
    alice = await key_client("alice")
    created = await submit(alice, b"x", "slow", params={"gate": "never-opened-links"})
    response = await alice.get(f"/v1/jobs/{created.json()['id']}/result-link")
    assert response.status_code == 409
    assert response.json()["code"] == "result_not_ready"
    await alice.delete(f"/v1/jobs/{created.json()['id']}")


async def test_a_full_download_by_link_cleans_up_after_itself(
    client: httpx.AsyncClient, key_client: KeyClient, run_until_idle: Callable[[], Any]
) -> None:
    alice = await key_client("alice")
    created = await submit(alice, b"once", delete_after_download=True)
    await run_until_idle()
    job = await wait_for_status(alice, created.json()["id"], "succeeded")
    assert (await client.get(job["result"]["url"])).status_code == 200
    await wait_for_status(alice, job["id"], "expired")
    gone = await client.get(job["result"]["url"])
    assert gone.status_code == 410


class TestRotation:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"auth": "required", "secret_key": f"{SECRET}, {OLD_SECRET}"}

    async def test_the_first_secret_signs_and_every_secret_verifies(
        self, client: httpx.AsyncClient, finished: tuple[Any, dict[str, Any]]
    ) -> None:
        _, job = finished
        old = LinkSigner([OLD_SECRET.encode()], 3600, 3600).result_link(job["id"])
        new = LinkSigner([SECRET.encode()], 3600, 3600).result_link(job["id"])
        retired = LinkSigner([b"r" * 40], 3600, 3600).result_link(job["id"])
        assert job["result"]["url"] == new.url
        assert (await client.get(old.url)).status_code == 200
        assert (await client.get(new.url)).status_code == 200
        assert (await client.get(retired.url)).status_code == 403
