"""Hostile file contents: types judged by their bytes, decompression bombs, archives."""

from __future__ import annotations

import gzip
import io
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.support.multipart import JOBS, MULTIPART, field_part, upload_body
from tests.support.problems import assert_problem
from tests.support.snapshots import Snapshot, assert_unchanged, take_snapshot
from tests.support.storage import blob_paths

PE_EXE = b"MZ" + b"\x90\x00" * 100
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 120
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
ARCHIVE_TYPES = {
    "application/zip",
    "application/gzip",
    "application/zstd",
    "application/x-tar",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/x-bzip2",
    "application/x-xz",
}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), "red").save(buffer, "PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG from Pillow whose IHDR is patched to claim `width`x`height` (CRC fixed)."""
    png = tiny_png()
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", ihdr) + png[33:]


def png_with_ztxt_bomb(inflated_bytes: int) -> bytes:
    """A 1x1 PNG carrying a compressed text chunk that inflates to `inflated_bytes`."""
    png = tiny_png()
    text = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * inflated_bytes, 9))
    return png[:33] + text + png[33:]


def files_named(marker: str, tmp_path: Path) -> list[Path]:
    """Files an extraction could have written: where the entries point (/tmp, not scanned
    recursively, since other runs churn there) and anywhere under the test's own tree."""
    return [*Path("/tmp").glob(f"*{marker}*"), *tmp_path.rglob(f"*{marker}*")]


async def post(
    client: httpx.AsyncClient,
    content: bytes,
    processor: str,
    filename: bytes,
    content_type: bytes,
    params: str | None = None,
) -> httpx.Response:
    body = upload_body(content, processor, filename=filename, content_type=content_type)
    if params is not None:
        body = field_part("params", params) + body
    return await client.post(JOBS, content=body, headers={"content-type": MULTIPART})


async def finished(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any], job_id: str
) -> Any:
    await run_until_idle()
    return (await client.get(f"{JOBS}/{job_id}")).json()


@pytest.mark.parametrize(
    ("content", "filename", "declared", "sniffed"),
    [
        pytest.param(
            PE_EXE, b"x.png", b"image/png", "application/vnd.microsoft.portable-executable", id="pe"
        ),
        pytest.param(ELF, b"x.jpg", b"image/jpeg", "application/x-executable", id="elf"),
        pytest.param(SVG, b"x.png", b"image/png", "text/plain", id="svg-script"),
    ],
)
async def test_executable_declared_as_image_is_refused_by_thumbnail(
    client: httpx.AsyncClient,
    before: Snapshot,
    content: bytes,
    filename: bytes,
    declared: bytes,
    sniffed: str,
) -> None:
    response = await post(client, content, "thumbnail", filename, declared)
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert problem["content_type"] == sniffed  # judged from the bytes, not the declared type
    assert "image/png" in problem["accepted"]
    await assert_unchanged(before)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(50_000, 50_000, id="past-pillows-own-limit"),
        pytest.param(8_000, 8_000, id="past-the-servers-50-mpx-limit"),
    ],
)
async def test_png_declaring_a_huge_size_fails_as_decompression_bomb(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any], width: int, height: int
) -> None:
    bomb = png_claiming(width, height)
    assert len(bomb) < 100
    response = await post(client, bomb, "thumbnail", b"bomb.png", b"image/png")
    assert response.status_code == 202, response.text
    job = await finished(client, run_until_idle, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "decompression_bomb"
    assert job["result"] is None
    result = await client.get(f"{JOBS}/{job['id']}/result")
    assert_problem(result, 409, "job_failed")


async def test_png_text_chunk_bomb_is_not_inflated(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any]
) -> None:
    # 20 MiB of text in 20 KiB: Pillow stops inflating at its MAX_TEXT_CHUNK (1 MiB) and the
    # image counts as corrupt.
    bomb = png_with_ztxt_bomb(20 * 1024 * 1024)
    assert len(bomb) < 64 * 1024
    response = await post(client, bomb, "thumbnail", b"text.png", b"image/png")
    assert response.status_code == 202, response.text
    job = await finished(client, run_until_idle, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "corrupt_image"


async def test_no_processor_unpacks_archives(client: httpx.AsyncClient) -> None:
    """Zip bombs and zip-slip need a processor that extracts archives; there is none. No
    processor declares an archive type; the ones that take a zip at all do so through `*/*`,
    and the built-in ones among them (checksum, compress) read their input as opaque bytes."""
    response = await client.get("/v1/processors")
    assert response.status_code == 200
    items = response.json()["items"]
    assert {"checksum", "compress", "thumbnail", "csv-to-parquet"} <= {p["name"] for p in items}
    for processor in items:
        declared = set(processor["content_types"])
        assert not declared & ARCHIVE_TYPES, processor
        assert "application/*" not in declared, processor
    takes_zip = {
        p["name"]
        for p in items
        if {"*/*", "application/*", "application/zip"} & set(p["content_types"])
    }
    builtins = {"checksum", "compress", "thumbnail", "csv-to-parquet"}
    assert takes_zip & builtins == {"checksum", "compress"}


async def test_zip_slip_archive_is_kept_as_opaque_bytes(
    client: httpx.AsyncClient, run_until_idle: Callable[[], Any], tmp_path: Path, before: Snapshot
) -> None:
    marker = f"zipslip-{uuid.uuid4().hex}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"../../../../../../tmp/{marker}", b"escaped")
        archive.writestr(f"/tmp/{marker}-abs", b"escaped")
        archive.writestr(f"..\\..\\{marker}-win", b"escaped")
    evil_zip = buffer.getvalue()

    response = await post(
        client, evil_zip, "compress", b"evil.zip", b"application/zip", '{"format": "gzip"}'
    )
    assert response.status_code == 202, response.text
    assert response.json()["input"]["content_type"] == "application/zip"
    job = await finished(client, run_until_idle, response.json()["id"])
    assert job["status"] == "succeeded", job
    result = await client.get(job["result"]["url"])
    assert gzip.decompress(result.content) == evil_zip  # compressed as is, never opened
    assert files_named(marker, tmp_path) == []
    after = take_snapshot(before.data_dir)
    assert set(after.files) - set(before.files) == set(blob_paths(job["id"]))
