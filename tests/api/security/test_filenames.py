"""Hostile client filenames. They are accepted (202): a filename is only ever shown, never used
as a path. The stored blob is named by the generated job id, the shown name is sanitised, and
the result's Content-Disposition is safe for old and new clients alike."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.support.multipart import JOBS, MULTIPART, quoted, upload_body
from tests.support.snapshots import Snapshot, take_snapshot
from tests.support.storage import blob_paths

CONTENT = b"the same harmless bytes\n"
ETC_PASSWD = Path("/etc/passwd")
_DB_FILES = re.compile(r"filejob\.db(-wal|-shm|-journal)?$")
# attachment; filename="<ascii>"; filename*=UTF-8''<pct-encoded>
_DISPOSITION = re.compile(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)')
# RFC 5987 attr-char, the only characters allowed unencoded in filename*.
_ATTR_CHARS = re.compile(r"(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+")


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and not _DB_FILES.search(p.name)}


def is_safe_display_name(name: str, max_bytes: int = 255) -> bool:
    """What a shown filename must be: non-empty NFC of at most `max_bytes` bytes, without
    separators, control characters or spaces other than " ", and not "." or ".."."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and not any(unicodedata.category(ch)[0] in ("C", "Z") and ch != " " for ch in name)
        and len(name.encode()) <= max_bytes
        and unicodedata.is_normalized("NFC", name)
        and name not in (".", "..")
    )


def etc_passwd_state() -> tuple[int, int] | None:
    try:
        stat = ETC_PASSWD.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


async def submit_named(client: httpx.AsyncClient, raw_name: str) -> dict[str, Any]:
    """Upload with `raw_name` as the bytes of the filename parameter (UTF-8, quoted-string
    escaping only): httpx would percent-encode control characters and double backslashes."""
    response = await client.post(
        JOBS,
        content=upload_body(CONTENT, filename=quoted(raw_name)),
        headers={"content-type": MULTIPART},
    )
    assert response.status_code == 202, response.text
    return response.json()


def assert_safe_disposition(header: str, filename: str) -> None:
    """`header` names `filename` (the job's result.filename) safely, ASCII and RFC 5987."""
    match = _DISPOSITION.fullmatch(header)
    assert match, header
    fallback, extended = match.groups()
    assert fallback and all(" " <= ch <= "~" for ch in fallback), fallback
    assert not set(fallback) & set('"\\;/'), fallback
    assert _ATTR_CHARS.fullmatch(extended), extended
    sent = unquote(extended, errors="strict")
    assert is_safe_display_name(sent), sent
    if is_safe_display_name(filename):
        assert sent == filename
    else:  # a result name past 255 bytes is shortened like a client's, keeping its extension
        stem, _, ext = sent.rpartition(".")
        assert filename.startswith(stem) and filename.endswith("." + ext)


CASES = [
    pytest.param("../../etc/passwd", "passwd", id="relative-traversal"),
    pytest.param("/etc/passwd", "passwd", id="absolute-posix"),
    pytest.param("C:\\x\\y.txt", "y.txt", id="absolute-windows"),
    pytest.param("..\\..\\windows\\win.ini", "win.ini", id="windows-traversal"),
    pytest.param("../..", "upload", id="only-dots-falls-back"),
    pytest.param("evil\x00.txt.png", "evil.txt.png", id="nul-inside"),
    pytest.param("a\x01b\x08c\x1bd\x7fe\x85f\u2028g.txt", "abcdefg.txt", id="control-chars"),
    pytest.param("invoice\u202etxt.exe", "invoicetxt.exe", id="bidi-override"),
    pytest.param("a" * 996 + ".txt", "a" * 251 + ".txt", id="1000-ascii-chars"),
    pytest.param("é" * 996 + ".txt", "é" * 125 + ".txt", id="1000-two-byte-chars"),
]


@pytest.mark.parametrize(("raw_name", "shown"), CASES)
async def test_hostile_filename_is_sanitised_and_never_a_path(
    client: httpx.AsyncClient,
    before: Snapshot,
    tmp_path: Path,
    run_until_idle: Callable[[], Any],
    raw_name: str,
    shown: str,
) -> None:
    tree_before = files_under(tmp_path)
    passwd_before = etc_passwd_state()

    job = await submit_named(client, raw_name)
    assert job["input"]["filename"] == shown
    assert is_safe_display_name(shown)

    await run_until_idle()
    done = (await client.get(f"{JOBS}/{job['id']}")).json()
    assert done["status"] == "succeeded", done
    download = await client.get(done["result"]["url"])
    assert download.status_code == 200
    assert_safe_disposition(download.headers["content-disposition"], done["result"]["filename"])

    # Only the input and result blobs appeared, both under blobs/ and named by the job id.
    data_dir = before.data_dir
    new = files_under(tmp_path) - tree_before
    assert new == {
        data_dir / "blobs" / "inputs" / job["id"][:2] / job["id"],
        data_dir / "blobs" / "results" / job["id"][:2] / f"{job['id']}.1",
    }
    assert (data_dir / "blobs" / "inputs" / job["id"][:2] / job["id"]).read_bytes() == CONTENT
    assert take_snapshot(data_dir).job_rows == before.job_rows + 1
    assert etc_passwd_state() == passwd_before


async def test_nfc_and_nfd_names_are_shown_alike_and_stored_apart(
    client: httpx.AsyncClient, before: Snapshot, run_until_idle: Callable[[], Any]
) -> None:
    nfc = unicodedata.normalize("NFC", "café.txt")
    nfd = unicodedata.normalize("NFD", "café.txt")
    assert nfc != nfd and nfc.encode() != nfd.encode()

    first = await submit_named(client, nfc)
    second = await submit_named(client, nfd)
    assert first["input"]["filename"] == second["input"]["filename"] == nfc
    # Same name, same bytes: still two jobs and two blobs, neither overwriting the other.
    assert first["id"] != second["id"]
    await run_until_idle()
    after = take_snapshot(before.data_dir)
    assert after.job_rows == before.job_rows + 2
    assert set(after.files) - set(before.files) == {
        path for job in (first, second) for path in blob_paths(job["id"])
    }
