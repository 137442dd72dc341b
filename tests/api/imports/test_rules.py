"""Where imports may go: the same SSRF guard as webhooks (private addresses refused unless
FILEJOB_IMPORT_ALLOW_PRIVATE, a name resolved and its address vetted and pinned at the fetch),
the operator's allow and deny patterns, and at most 5 redirects, every hop judged again."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from tests.support.imports import import_settings, post_import
from tests.support.jobs import wait_for_status
from tests.support.origin import File, Origin, Status
from tests.support.problems import assert_problem
from tests.support.storage import job_rows

RunUntilIdle = Callable[[], Any]
DATA = b"\x00imported bytes\n" * 100


def resolving(answers: dict[str, str]) -> Callable[..., Awaitable[Any]]:
    """anyio.getaddrinfo, but the names in `answers` resolve to the given address."""
    real = anyio.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return await real(host, port, *args, **kwargs)

    return getaddrinfo


async def settled(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle, job_id: str
) -> dict[str, Any]:
    await run_until_idle()
    return await wait_for_status(client, job_id, "succeeded", "failed")


async def refused_at_fetch(
    client: httpx.AsyncClient, run_until_idle: RunUntilIdle, url: str, code: str
) -> dict[str, Any]:
    """Submit `url` (taken), and see its job fail at its first fetch with `code`."""
    response = await post_import(client, url)
    assert response.status_code == 202, response.text
    job = await settled(client, run_until_idle, response.json()["id"])
    assert (job["status"], job["attempts"]) == ("failed", 1), job
    assert job["error"]["code"] == code, job["error"]
    return job


async def test_five_redirects_are_followed(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    job_id = (await post_import(client, origin.redirects("five", 5, DATA))).json()["id"]
    job = await settled(client, run_until_idle, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["input"]["size"] == len(DATA)
    assert len(origin.requests) == 6


async def test_a_sixth_redirect_fails_the_job(
    client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
) -> None:
    await refused_at_fetch(
        client, run_until_idle, origin.redirects("six", 6, DATA), "too_many_redirects"
    )
    assert origin.requests == [f"/six/{hop}" for hop in range(6)]  # the file never asked for


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/file", "/relative", "http://user:secret@example.com/", "http://a..b/x"],
)
async def test_a_url_that_is_no_http_url_is_refused(
    url: str, app: FastAPI, client: httpx.AsyncClient
) -> None:
    assert_problem(await post_import(client, url), 422, "invalid_source_url")
    assert await job_rows(app) == 0


class TestPrivateAddresses:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return import_settings(import_allow_private=False)

    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:{port}/file",
            "http://localhost:{port}/file",
            "http://[::1]:{port}/file",
            "http://0x7f.1:{port}/file",
            "http://[::ffff:127.0.0.1]:{port}/file",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.7/file",
        ],
    )
    async def test_a_private_address_is_refused_at_submit(
        self, url: str, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        origin.serve("/file", File(DATA))
        response = await post_import(client, url.format(port=origin.port))
        assert_problem(response, 422, "source_url_refused")
        assert await job_rows(app) == 0
        assert origin.requests == []

    async def test_a_name_resolving_to_loopback_is_refused_at_the_fetch(
        self,
        client: httpx.AsyncClient,
        origin: Origin,
        run_until_idle: RunUntilIdle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """DNS rebinding: a name that looks public at submit answers 127.0.0.1 later."""
        monkeypatch.setattr(anyio, "getaddrinfo", resolving({"files.rebind.example": "127.0.0.1"}))
        origin.serve("/file", File(DATA))
        url = f"http://files.rebind.example:{origin.port}/file"
        job = await refused_at_fetch(client, run_until_idle, url, "source_url_refused")
        assert "non-public address (127.0.0.1)" in job["error"]["message"]
        assert origin.requests == []


class TestDenyPatterns:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        deny = [
            r"https?://denied\.example(:\d+)?/.*",
            r".*/secret/.*",
            r"https://secret\.example\.com/.*",  # no port: the default one is no other URL
        ]
        return import_settings(import_deny=deny)

    @pytest.fixture(autouse=True)
    def names(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Both names reach the origin, were they asked for."""
        answers = {"denied.example": "127.0.0.1", "other.example": "127.0.0.1"}
        monkeypatch.setattr(anyio, "getaddrinfo", resolving(answers))

    @pytest.mark.parametrize("url", ["{origin}/secret/file", "http://DENIED.example.:{port}/x"])
    async def test_a_denied_url_is_refused_at_submit(
        self, url: str, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        response = await post_import(client, url.format(origin=origin.url, port=origin.port))
        assert_problem(response, 422, "source_url_refused")
        assert await job_rows(app) == 0

    @pytest.mark.parametrize(
        "url",
        [
            "https://secret.example.com:443/x",  # the scheme's default port, spelled out
            "HTTPS://Secret.Example.COM:443/x",
            "http://denied.example",  # no path: the path is "/"
            "http://denied.example?dump=1",  # a query without a path
            "http://denied.example:80",
            "{origin}/%73ecret/file",  # an escaped unreserved character is that character
        ],
    )
    async def test_every_spelling_of_a_denied_url_is_refused(
        self, url: str, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        origin.serve("/secret/file", File(DATA))
        response = await post_import(client, url.format(origin=origin.url))
        assert_problem(response, 422, "source_url_refused")
        assert await job_rows(app) == 0
        assert origin.requests == []

    @pytest.mark.parametrize(
        "url", ["http://other.example:0/file", "https://other.example:0", "http://a.example:65536/"]
    )
    async def test_a_port_outside_1_to_65535_is_invalid(
        self, url: str, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        assert_problem(await post_import(client, url), 422, "invalid_source_url")
        assert await job_rows(app) == 0

    async def test_a_redirect_to_a_denied_host_fails_the_job(
        self, client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
    ) -> None:
        origin.serve("/file", File(DATA))
        url = origin.serve("/hop", Status(302, f"http://denied.example:{origin.port}/file"))
        await refused_at_fetch(client, run_until_idle, url, "source_url_refused")
        assert origin.requests == ["/hop"]

    async def test_a_redirect_to_another_host_is_followed(
        self, client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
    ) -> None:
        origin.serve("/file", File(DATA))
        url = origin.serve("/hop", Status(301, f"http://other.example:{origin.port}/file"))
        job = await settled(client, run_until_idle, (await post_import(client, url)).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        assert origin.requests == ["/hop", "/file"]


class TestAllowPatterns:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return import_settings(import_allow=[r"http://127\.0\.0\.1:\d+/public/.*"])

    async def test_only_allowed_urls_are_taken(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        origin: Origin,
        run_until_idle: RunUntilIdle,
    ) -> None:
        refused = await post_import(client, origin.serve("/private/file", File(DATA)))
        assert_problem(refused, 422, "source_url_refused")
        taken = await post_import(client, origin.serve("/public/file", File(DATA)))
        job = await settled(client, run_until_idle, taken.json()["id"])
        assert job["status"] == "succeeded", job["error"]

    @pytest.mark.parametrize("path", ["/public/../private/file", "/public/%2E%2e/private/file"])
    async def test_a_path_that_leads_out_of_the_allowed_ones_is_refused(
        self, path: str, app: FastAPI, client: httpx.AsyncClient, origin: Origin
    ) -> None:
        """Its dot segments are resolved before it is judged, as they are before it is sent:
        what is judged is `/private/file`."""
        origin.serve("/private/file", File(DATA))
        assert_problem(await post_import(client, origin.url + path), 422, "source_url_refused")
        assert await job_rows(app) == 0

    async def test_a_redirect_out_of_the_allowed_urls_fails_the_job(
        self, client: httpx.AsyncClient, origin: Origin, run_until_idle: RunUntilIdle
    ) -> None:
        origin.serve("/private/file", File(DATA))
        url = origin.serve("/public/hop", Status(307, "/private/file"))
        await refused_at_fetch(client, run_until_idle, url, "source_url_refused")
        assert origin.requests == ["/public/hop"]
