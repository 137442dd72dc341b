"""No job error a client sees names a server path: not the stored input's, nor the data
folder, nor the temp folder, nor where Python or the processors are installed. Whatever the
processor (built in or third-party, in a thread or a child process) put in its error."""

from __future__ import annotations

import logging
import os
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from filejob.jobs.error_text import folders_of, scrub_paths
from tests.support.jobs import submit

REPO = Path(__file__).resolve().parents[3]
# Two or more segments after a slash that follows no word, dot, colon or slash: a path, not
# "image/png", "3/4", a URL, nor the API's own "/v1/jobs/..." (a problem's `instance`).
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/(?!v1/)[\w.@+-]+/")


def assert_no_path(text: str, *roots: Path) -> None:
    for root in {*roots, REPO, Path(sys.prefix), Path(tempfile.gettempdir()), Path.cwd()}:
        assert str(root) not in text
    assert ABSOLUTE_PATH.search(text) is None, text
    assert "name='" not in text, text


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def empty_png() -> bytes:
    """A well-formed PNG header that says 0x0 pixels: no image library can open it."""
    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b""))
        + png_chunk(b"IEND", b"")
    )


async def test_an_unreadable_image_fails_without_naming_its_stored_path(
    client: httpx.AsyncClient, run_until_idle: Any, data_dir: Path
) -> None:
    submitted = await submit(client, empty_png(), "thumbnail", content_type="image/png")
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    await run_until_idle()
    response = await client.get(f"/v1/jobs/{job_id}")
    job = response.json()
    assert job["status"] == "failed" and job["error"]["code"] == "corrupt_image"
    assert job["error"]["message"].startswith("cannot decode image: ")
    assert_no_path(job["error"]["message"], data_dir)
    assert_no_path(response.text, data_dir)
    result = await client.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 409
    assert_no_path(result.text, data_dir)
    listed = await client.get("/v1/jobs")
    assert_no_path(listed.text, data_dir)


@pytest.mark.parametrize("processor", ["leaky", "leaky-child"])
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("permanent", "leaky"),
        ("retryable", "leaky"),
        ("oserror", "io_error"),
        ("bug", "processor_error"),
    ],
)
async def test_a_third_party_processors_error_loses_its_paths(
    client: httpx.AsyncClient,
    run_until_idle: Any,
    data_dir: Path,
    processor: str,
    kind: str,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="filejob.jobs.runner")
    params = {"kind": kind}
    submitted = await submit(client, b"data", processor, params=params, max_attempts=1)
    job_id = submitted.json()["id"]
    await run_until_idle()
    response = await client.get(f"/v1/jobs/{job_id}")
    job = response.json()
    assert job["status"] == "failed" and job["error"]["code"] == code
    assert_no_path(response.text, data_dir)
    result = await client.get(f"/v1/jobs/{job_id}/result")
    assert_no_path(result.text, data_dir)
    # What the error said besides the paths is kept, once.
    message = job["error"]["message"]
    if kind == "oserror":
        assert message == "[Errno 2] No such file or directory: '<path>'"
    elif kind == "bug":
        assert "ValueError: unexpected state of " in message
    else:
        assert message.startswith("cannot read <")
    # The operator's log keeps what the processor said, paths and all.
    raised = [r.getMessage() for r in caplog.records if "as raised" in r.getMessage()]
    assert raised and ("support/processors.py" in raised[0] or "filejob-leaky" in raised[0])


def test_known_paths_get_their_names_and_other_paths_a_placeholder(tmp_path: Path) -> None:
    data = tmp_path / "my data"  # a space: recognised because it is known
    input_path = data / "blobs" / "inputs" / "abc"
    text = (
        f"cannot identify image file <_io.BufferedReader name='{input_path}'> "
        f"(wrote {data}/tmp/x.part; see /opt/plugins/lib/thing.py, line 3; "
        f"{sys.prefix}/lib/python3.11/site-packages/PIL/Image.py; file:///etc/passwd; "
        f"read {input_path} twice)"
    )
    scrubbed = scrub_paths(text, {str(input_path): "<input>"}, [str(data)])
    assert scrubbed == (
        "cannot identify image file <input> (wrote <path>; see <path>, line 3; <path>; "
        "<path>; read <input> twice)"
    )


def test_the_folders_of_a_jobs_files_are_known(tmp_path: Path) -> None:
    data = tmp_path / "my data"
    text = f"no room in {data}/tmp for {data}/blobs/results/x"
    folders = folders_of(str(data / "blobs" / "inputs" / "a"), str(data / "tmp" / "b"))
    assert scrub_paths(text, {}, folders) == "no room in <path> for <path>"
    # A known path is a whole name: "/x/data" is not in "/x/database".
    assert scrub_paths(f"{tmp_path}/database/y", {str(tmp_path / "data"): "<input>"}) == "<path>"


@pytest.mark.parametrize(
    "text",
    [
        "image/png is not accepted",
        "ratio 3/4 and 16/9",
        "fetch https://example.com/a/b failed",
        "at most 10 MB/s",
        "width must be between 1 and 4096 (got 0)",
        "expected a date like 2024/01/31",
    ],
)
def test_text_without_paths_is_left_alone(text: str) -> None:
    assert scrub_paths(text) == text


def test_file_reprs_without_a_path_name_the_file_generically() -> None:
    assert scrub_paths("bad <_io.BufferedRandom name=7> here") == "bad <file> here"
    assert (
        scrub_paths(f"bad <_io.TextIOWrapper name='{os.devnull}' mode='r' encoding='UTF-8'>")
        == "bad <file>"
    )
