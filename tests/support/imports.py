"""Asking for imports over HTTP, each of the three ways `POST /v1/jobs` takes a `source_url`:
a multipart form without a file, the query string with an empty body, a JSON body."""

from __future__ import annotations

import json
from typing import Any

import httpx

JOBS = "/v1/jobs"
WAYS = ("form", "query", "json")
LIMIT = 256 * 1024  # FILEJOB_MAX_UPLOAD_BYTES of the imports' tests


def import_settings(**overrides: Any) -> dict[str, Any]:
    """The imports' test settings: the origin is on 127.0.0.1; retries come at once; every
    spool goes to disk (so that one left open would show as an open temp file)."""
    return {
        "import_allow_private": True,
        "import_timeout": 5.0,
        "max_upload_bytes": LIMIT,
        "retry_base_delay": 0,
        "retry_max_delay": 0,
        "spool_memory_bytes": 0,
        **overrides,
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


async def post_import(
    client: httpx.AsyncClient,
    source_url: str,
    way: str = "form",
    *,
    processor: str = "checksum",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST /v1/jobs naming `source_url`, with `fields` (params as a dict) sent `way`."""
    values: dict[str, Any] = {"processor": processor, "source_url": source_url, **fields}
    if way == "json":
        return await client.post(JOBS, json=values, headers=headers)
    text = {name: _text(value) for name, value in values.items()}
    if way == "query":
        return await client.post(JOBS, params=text, headers=headers)  # an empty body
    assert way == "form", way
    # Parts without a filename: fields of a multipart form that carries no file.
    parts = [(name, (None, value.encode())) for name, value in text.items()]
    return await client.post(JOBS, files=parts, headers=headers)
