"""A hand-made tus 1.0.0 client over httpx, for the tests of this folder: each request as the
protocol spells it, so that a test can also send it wrong."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}


def metadata(**fields: str) -> str:
    """Upload-Metadata for `fields` (values base64-encoded, as the protocol wants)."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in fields.items()
    )


async def create(
    client: httpx.AsyncClient,
    length: int | None,
    processor: str = "checksum",
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /v1/uploads (with `body`: creation-with-upload; `fields`: more metadata);
    `length` None defers it."""
    sent = {**TUS, "Upload-Metadata": metadata(processor=processor, **(fields or {}))}
    if length is None:
        sent["Upload-Defer-Length"] = "1"
    else:
        sent["Upload-Length"] = str(length)
    if body is not None:
        sent.update(OFFSET_STREAM)
    sent.update(headers or {})
    return await client.post("/v1/uploads", content=body, headers=sent)


async def patch(
    client: httpx.AsyncClient,
    url: str,
    offset: int,
    data: Any,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {**TUS, **OFFSET_STREAM, "Upload-Offset": str(offset), **(headers or {})}
    return await client.patch(url, content=data, headers=sent)


async def head(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.head(url, headers=TUS)


def checksum(algorithm: str, data: bytes) -> dict[str, str]:
    digest = hashlib.new(algorithm, data).digest()
    return {"Upload-Checksum": f"{algorithm} {base64.b64encode(digest).decode()}"}


async def upload(
    client: httpx.AsyncClient, content: bytes, chunk: int, **fields: str
) -> httpx.Response:
    """The whole of `content`, `chunk` bytes per PATCH; the last PATCH's answer."""
    created = await create(client, len(content), fields=fields)
    assert created.status_code == 201, created.text
    url, offset = created.headers["location"], 0
    while True:
        answer = await patch(client, url, offset, content[offset : offset + chunk])
        assert answer.status_code == 204, answer.text
        offset = int(answer.headers["upload-offset"])
        if offset == len(content):
            return answer


def job_of(answer: httpx.Response) -> str:
    """The job id in an answer's `Link: </v1/jobs/{id}>; rel="monitor"`."""
    link = answer.headers["link"]
    assert link.endswith('>; rel="monitor"') and link.startswith("</v1/jobs/"), link
    return link[len("</v1/jobs/") : -len('>; rel="monitor"')]
