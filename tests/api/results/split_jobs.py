"""Jobs of the `split` test processors (tests/support/processors.py), and what they make."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.jobs import submit, wait_for_status

CONTENT = bytes(range(256)) * 4096 + b"and a tail"  # 1 MiB and a bit


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected(content: bytes = CONTENT, parts: int = 3, *, emit_only: bool = False) -> list[Any]:
    """(filename, bytes) of each result `split` makes of `content`, in order."""
    size = max(1, -(-len(content) // parts))
    sliced = [(f"part-{n + 1}.txt", content[n * size : (n + 1) * size]) for n in range(parts)]
    return sliced if emit_only else [("whole.bin", content), *sliced]


async def split_job(
    client: httpx.AsyncClient,
    run_until_idle: Callable[[], Any],
    content: bytes = CONTENT,
    processor: str = "split",
    *,
    delete_after_download: bool | None = None,
    **params: Any,
) -> dict[str, Any]:
    """A `split` job on `content`, run to success: its JSON."""
    answer = await submit(
        client, content, processor, params=params, delete_after_download=delete_after_download
    )
    assert answer.status_code == 202, answer.text
    await run_until_idle()
    return await wait_for_status(client, answer.json()["id"], "succeeded")


def listed(job: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(filename, size, sha256) of each of a job's listed results."""
    return [(r["filename"], r["size"], r["sha256"]) for r in job["results"]]


def described(results: list[Any]) -> list[tuple[str, int, str]]:
    return [(name, len(data), sha256(data)) for name, data in results]
