"""GET/HEAD /v1/jobs/{id}/result: streaming, ranges, conditionals, and cleanup rules."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit
from tests.support.processors import GATES
from tests.support.storage import stored


async def finished_job(
    client: httpx.AsyncClient,
    run_until_idle: Any,
    content: bytes,
    *,
    filename: str = "report.bin",
    delete_after_download: bool = False,
) -> dict[str, Any]:
    job = (
        await submit(
            client,
            content,
            "slow",
            filename=filename,
            params={"steps": 1, "step_seconds": 0},
            delete_after_download=delete_after_download,
        )
    ).json()
    await run_until_idle()
    job = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert job["status"] == "succeeded"
    return job


async def test_download_streams_result_with_headers(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 5)
    job = await finished_job(client, run_until_idle, content)
    response = await client.get(job["result"]["url"])
    assert response.status_code == 200
    assert response.content == content
    sha = hashlib.sha256(content).hexdigest()
    assert job["result"]["sha256"] == sha
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["content-length"] == str(len(content))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"report.bin.out\"; filename*=UTF-8''report.bin.out"
    )


async def test_non_ascii_name_gets_ascii_fallback(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    job = await finished_job(client, run_until_idle, b"data", filename="résumé 東京.txt")
    disposition = (await client.get(job["result"]["url"])).headers["content-disposition"]
    assert disposition.startswith(
        'attachment; filename="resume _.txt.out"'
    ) or disposition.startswith('attachment; filename="resume .txt.out"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%B1%E4%BA%AC.txt.out" in disposition
    disposition.encode("latin-1")  # a valid header value


@pytest.mark.parametrize(
    ("range_header", "status", "expected"),
    [
        ("bytes=0-9", 206, slice(0, 10)),
        ("bytes=10-", 206, slice(10, None)),
        ("bytes=-7", 206, slice(-7, None)),
        ("bytes=95-200", 206, slice(95, None)),
        ("bytes=5-2", 200, slice(None)),  # invalid: ignored
        ("bytes=0-1,5-6", 200, slice(None)),  # multiple ranges: served whole
        ("items=0-1", 200, slice(None)),
    ],
)
async def test_ranges(
    client: httpx.AsyncClient, run_until_idle: Any, range_header: str, status: int, expected: slice
) -> None:
    content = bytes(range(100))
    job = await finished_job(client, run_until_idle, content)
    response = await client.get(job["result"]["url"], headers={"Range": range_header})
    assert response.status_code == status
    assert response.content == content[expected]
    if status == 206:
        part = content[expected]
        start = content.index(part)
        assert response.headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/100"
        assert response.headers["content-length"] == str(len(part))


@pytest.mark.parametrize("range_header", ["bytes=100-", "bytes=500-600", "bytes=-0"])
async def test_unsatisfiable_range_is_416(
    client: httpx.AsyncClient, run_until_idle: Any, range_header: str
) -> None:
    job = await finished_job(client, run_until_idle, bytes(range(100)))
    response = await client.get(job["result"]["url"], headers={"Range": range_header})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */100"
    assert response.json()["code"] == "range_not_satisfiable"


async def test_if_range(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    content = bytes(range(100))
    job = await finished_job(client, run_until_idle, content)
    url, etag = job["result"]["url"], f'"{job["result"]["sha256"]}"'
    same = await client.get(url, headers={"Range": "bytes=0-4", "If-Range": etag})
    assert same.status_code == 206 and same.content == content[:5]
    changed = await client.get(url, headers={"Range": "bytes=0-4", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.content == content


async def test_if_none_match_is_304(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    job = await finished_job(client, run_until_idle, b"hello")
    etag = f'"{job["result"]["sha256"]}"'
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        response = await client.get(job["result"]["url"], headers={"If-None-Match": header})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] == etag
    assert (
        await client.get(job["result"]["url"], headers={"If-None-Match": '"x"'})
    ).status_code == 200


async def test_head_has_headers_no_body(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    job = await finished_job(client, run_until_idle, b"hello world")
    response = await client.head(job["result"]["url"])
    assert response.status_code == 200
    assert response.headers["content-length"] == "11"
    assert response.content == b""


async def test_inline_disposition(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    job = (
        await submit(client, b"a,b\n1,2\n", "checksum", filename="t.csv", content_type="text/csv")
    ).json()
    await run_until_idle()
    url = f"/v1/jobs/{job['id']}/result"
    inline = await client.get(url, params={"disposition": "inline"})
    assert inline.headers["content-type"] == "application/json"
    assert inline.headers["content-disposition"].startswith("inline;")
    assert inline.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(url, params={"disposition": "bogus"})).status_code == 422


async def test_inline_refused_for_executable_types(
    client: httpx.AsyncClient, run_until_idle: Any, app: Any
) -> None:
    job = await finished_job(client, run_until_idle, b"<html><script>alert(1)</script></html>")
    # Pretend the processor produced HTML: what a browser would run must stay an attachment.
    from sqlalchemy import update

    from filejob.jobs.model import Job

    async with app.state.services.jobs.db.write() as session:
        await session.execute(
            update(Job).where(Job.id == job["id"]).values(result_content_type="text/html")
        )
    response = await client.get(job["result"]["url"], params={"disposition": "inline"})
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_not_finished_is_409_with_status(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    GATES["hold"] = gate = __import__("threading").Event()
    try:
        job = (await submit(client, b"x", "slow", params={"steps": 1, "gate": "hold"})).json()
        response = await client.get(f"/v1/jobs/{job['id']}/result")
        assert response.status_code == 409
        assert response.json()["code"] == "result_not_ready"
        assert response.json()["job_status"] in ("queued", "running")
    finally:
        gate.set()
        await run_until_idle()


async def test_failed_is_409_with_error(client: httpx.AsyncClient, run_until_idle: Any) -> None:
    job = (
        await submit(client, b"x", "slow", params={"steps": 1, "step_seconds": 0, "fail": True})
    ).json()
    await run_until_idle()
    response = await client.get(f"/v1/jobs/{job['id']}/result")
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "job_failed"
    assert problem["error"] == {"code": "asked_to_fail", "message": "asked to fail"}
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["status"] == "failed" and status["error"]["code"] == "asked_to_fail"


async def test_unknown_job_result_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/doesnotexist/result")
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"


# -- delete after download ------------------------------------------------------------------


async def test_complete_download_deletes_files_and_expires(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    content = os.urandom(2 * 1024 * 1024)
    job = await finished_job(client, run_until_idle, content, delete_after_download=True)
    assert len(await stored(app)) == 2  # input and result
    response = await client.get(job["result"]["url"])
    assert response.status_code == 200 and response.content == content
    assert await stored(app) == []
    after = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert after["status"] == "expired" and after["result"] is None
    gone = await client.get(job["result"]["url"])
    assert gone.status_code == 410 and gone.json()["code"] == "result_gone"


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-99"},
        {"Range": "bytes=-1"},
        {"Range": "bytes=999999999-"},  # 416
        {"If-None-Match": "*"},  # 304
    ],
)
async def test_partial_or_conditional_requests_delete_nothing(
    app: Any,
    client: httpx.AsyncClient,
    run_until_idle: Any,
    data_dir: Path,
    headers: dict[str, str],
) -> None:
    job = await finished_job(client, run_until_idle, os.urandom(4096), delete_after_download=True)
    response = await client.get(job["result"]["url"], headers=headers)
    assert response.status_code in (206, 304, 416)
    assert len(await stored(app)) == 2
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "succeeded"


async def test_head_deletes_nothing(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job = await finished_job(client, run_until_idle, os.urandom(4096), delete_after_download=True)
    assert (await client.head(job["result"]["url"])).status_code == 200
    assert len(await stored(app)) == 2


async def test_without_flag_download_keeps_files(
    app: Any, client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    job = await finished_job(client, run_until_idle, os.urandom(4096))
    assert (await client.get(job["result"]["url"])).status_code == 200
    assert len(await stored(app)) == 2
    assert (await client.get(job["result"]["url"])).status_code == 200
