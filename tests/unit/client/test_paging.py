"""`filejob jobs --all` reads every page by its cursor; `--since` stops at the first job older
than asked; the client's calls against an API that answers from memory (httpx's
MockTransport), the same client the CLI uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from filejob.client.api import FilejobClient
from filejob.client.commands import _listed

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def fake_jobs(count: int) -> list[dict[str, Any]]:
    """Newest first, one a minute."""
    return [
        {"id": f"j{n}", "created_at": (NOW - timedelta(minutes=n)).isoformat(), "status": "x"}
        for n in range(count)
    ]


def serving(jobs: list[dict[str, Any]], pages: list[dict[str, Any]]) -> FilejobClient:
    def answer(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        pages.append(query)
        start = int(query.get("cursor", "0"))
        end = start + int(query["limit"])
        following = str(end) if end < len(jobs) else None
        return httpx.Response(200, json={"items": jobs[start:end], "next_cursor": following})

    client = FilejobClient("http://filejob.test")
    transport = httpx.MockTransport(answer)
    client.http = httpx.Client(base_url="http://filejob.test", transport=transport)
    return client


def test_all_follows_every_cursor() -> None:
    pages: list[dict[str, Any]] = []
    with serving(fake_jobs(1234), pages) as client:
        found = _listed(client, None, "compress", None, 50, every=True)
    assert [j["id"] for j in found] == [f"j{n}" for n in range(1234)]
    assert [p.get("cursor") for p in pages] == [None, "500", "1000"]
    assert all(p["processor"] == "compress" and "status" not in p for p in pages)


def test_limit_and_since_stop_early() -> None:
    pages: list[dict[str, Any]] = []
    with serving(fake_jobs(1234), pages) as client:
        assert len(_listed(client, None, None, None, 50, every=False)) == 50
        recent = _listed(client, None, None, NOW - timedelta(minutes=9, seconds=30), 50, True)
    assert [j["id"] for j in recent] == [f"j{n}" for n in range(10)]
    assert [p["limit"] for p in pages] == ["50", "500"]  # one page each, no more than asked
