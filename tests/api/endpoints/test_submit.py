"""POST /v1/jobs: what a 202 promises, and every way a bad upload is refused cleanly."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.jobs import submit
from tests.support.storage import assert_clean, blob_bytes, job_rows, stored

PNG_EXE = b"MZ\x90\x00" + os.urandom(4096)
TRUNCATED = (
    b'--xyz\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
    b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, "PNG")
    return buffer.getvalue()


async def test_accepts_upload_and_answers_202_with_job(
    client: httpx.AsyncClient, data_dir: Path, app: Any
) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)  # past the in-memory spool: the adopted path
    response = await submit(client, content, filename="../../etc/passwd.bin")
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert len(job["id"]) >= 22 and all(c.isalnum() or c in "-_" for c in job["id"])
    assert job["status"] == "queued"
    assert job["input"] == {
        "filename": "passwd.bin",
        "content_type": "application/octet-stream",
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert job["error"] is None and job["result"] is None
    # Before the 202 the row is committed and the bytes are stored under the generated id.
    assert await job_rows(app) == 1
    assert await blob_bytes(app, f"inputs/{job['id']}") == content
    assert not any("passwd" in key for key in await stored(app))


async def test_small_upload_kept_in_memory_is_stored_too(
    app: Any, client: httpx.AsyncClient
) -> None:
    content = b"tiny"
    job = (await submit(client, content)).json()
    assert await blob_bytes(app, f"inputs/{job['id']}") == content


async def test_job_runs_in_background_and_succeeds(
    client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    content = os.urandom(2 * 1024 * 1024)
    job = (await submit(client, content, "compress", params={"format": "zstd"})).json()
    await run_until_idle()
    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1 and done["progress"] == 1.0
    assert done["params"] == {"format": "zstd", "level": 3}
    assert done["result"]["filename"] == "input.bin.zst"
    body = (await client.get(done["result"]["url"])).content
    assert hashlib.sha256(body).hexdigest() == done["result"]["sha256"]
    import zstandard

    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == content


@pytest.mark.parametrize(
    ("fields", "files", "status", "code"),
    [
        ({"processor": "checksum"}, None, 422, "file_or_source_url"),  # no file field
        ({"processor": ""}, {"file": ("a.bin", b"x")}, 422, "validation_error"),
        ({}, {"file": ("a.bin", b"x")}, 422, "validation_error"),  # no processor
        ({"processor": "nope"}, {"file": ("a.bin", b"x")}, 422, "unknown_processor"),
        ({"processor": "checksum"}, {"file": ("a.bin", b"")}, 422, "empty_file"),
        (
            {"processor": "compress", "params": '{"format": "rar"}'},
            {"file": ("a.bin", b"x")},
            422,
            "invalid_params",
        ),
        (
            {"processor": "compress", "params": "{not json"},
            {"file": ("a.bin", b"x")},
            422,
            "invalid_params",
        ),
        (
            {"processor": "compress", "params": "[1, 2]"},
            {"file": ("a.bin", b"x")},
            422,
            "invalid_params",
        ),
        (
            {"processor": "thumbnail"},
            {"file": ("evil.png", PNG_EXE, "image/png")},
            415,
            "unsupported_media_type",
        ),
    ],
)
async def test_bad_uploads_are_refused_without_leftovers(
    client: httpx.AsyncClient,
    app: Any,
    data_dir: Path,
    fields: dict[str, str],
    files: dict[str, Any] | None,
    status: int,
    code: str,
) -> None:
    if files is None:
        # httpx only sends multipart when there are files; build the body by hand.
        response = await client.post(
            "/v1/jobs",
            content=(
                b'--b\r\nContent-Disposition: form-data; name="processor"\r\n\r\n'
                b"checksum\r\n--b--\r\n"
            ),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    else:
        response = await client.post("/v1/jobs", data=fields, files=files)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["status"] == status
    assert problem["type"].endswith(code) and problem["title"] and problem["detail"]
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_invalid_params_lists_field_errors(client: httpx.AsyncClient) -> None:
    response = await submit(client, b"x", "compress", params={"format": "gzip", "level": 42})
    problem = response.json()
    assert response.status_code == 422 and problem["code"] == "invalid_params"
    assert problem["errors"] and all({"loc", "msg", "type"} <= set(e) for e in problem["errors"])


async def test_unknown_processor_lists_available(client: httpx.AsyncClient) -> None:
    problem = (await submit(client, b"x", "nope")).json()
    assert "checksum" in problem["available"]


async def test_thumbnail_accepts_png_judged_by_bytes_not_declared_type(
    client: httpx.AsyncClient,
) -> None:
    response = await submit(
        client, png_bytes(), "thumbnail", filename="pic", content_type="application/octet-stream"
    )
    assert response.status_code == 202
    assert response.json()["input"]["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not multipart at all", "multipart/form-data; boundary=xyz"),
        (TRUNCATED, "multipart/form-data; boundary=xyz"),
        (TRUNCATED + b"\r\n--xyz", "multipart/form-data; boundary=xyz"),
        (b"whatever", "multipart/form-data"),  # no boundary
    ],
)
async def test_malformed_multipart_is_400(
    client: httpx.AsyncClient, app: Any, data_dir: Path, body: bytes, content_type: str
) -> None:
    response = await client.post("/v1/jobs", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "malformed_multipart"
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_a_body_that_is_not_multipart_is_415(
    client: httpx.AsyncClient, app: Any, data_dir: Path
) -> None:
    response = await client.post(
        "/v1/jobs",
        content=b'{"processor": "checksum"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 415, response.text
    assert response.json()["accepted"] == ["multipart/form-data"]
    assert await job_rows(app) == 0
    await assert_clean(app)


async def test_large_truncated_body_with_writes_in_flight_leaves_nothing(
    client: httpx.AsyncClient, app: Any, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    async def body() -> Any:
        yield (
            b'--xyz\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        )
        for _ in range(96):  # 24 MiB: several batches are written while parsing goes on
            yield os.urandom(256 * 1024)

    response = await client.post(
        "/v1/jobs", content=body(), headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_multipart"
    gc.collect()
    assert "never retrieved" not in caplog.text
    assert await job_rows(app) == 0
    await assert_clean(app)
