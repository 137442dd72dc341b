"""`/v1/uploads/` (a client's endpoint configured with a trailing slash) is `/v1/uploads`: the
same discovery and the same creation, with Tus-Resumable, not a 404 or a redirect."""

from __future__ import annotations

import httpx

from tests.api.uploads.tus import tus


async def test_options_with_a_trailing_slash(client: httpx.AsyncClient) -> None:
    answer = await client.options("/v1/uploads/")
    assert answer.status_code == 204
    assert answer.headers["tus-resumable"] == "1.0.0"
    assert "creation" in answer.headers["tus-extension"].split(",")


async def test_creation_with_a_trailing_slash(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v1/uploads/",
        headers={
            **tus.TUS,
            "Upload-Length": "3",
            "Upload-Metadata": tus.metadata(processor="checksum"),
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["tus-resumable"] == "1.0.0"
    url = created.headers["location"]
    assert url.startswith("/v1/uploads/") and url != "/v1/uploads/"
    done = await tus.patch(client, url, 0, b"abc")
    assert done.status_code == 204
    assert done.headers["link"].startswith("</v1/jobs/")
