"""No answer is ever built from the Host header: a trailing slash is a 404, not a redirect to
an absolute URL on whatever host the client named (with a signed query carried along)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.problems import assert_problem


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/",
        "/v1/processors/",
        "/v1/jobs/some-id/",
        "/v1/jobs/some-id/result/?expires=99999999999&sig=abc",
    ],
)
async def test_a_trailing_slash_never_redirects_to_the_host_header(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"host": "evil.example"})
    assert "location" not in response.headers
    assert_problem(response, 404, "not_found")
