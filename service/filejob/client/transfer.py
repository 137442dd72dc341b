"""A result's download, resumable and verified.

The bytes go to `NAME.part`, and the result's validator (its ETag) to `NAME.part.etag` before
the first byte. A later try sends `Range` from the part's length with `If-Range: <that ETag>`:
the server answers 206 with the rest when the part holds the beginning of this very result, and
200 with the whole body otherwise (the part then starts over). A part without its validator
(left by another client, or by an older filejob) is not trusted and starts over too. The whole
file must match the job's sha256 before it takes its name.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import httpx

from filejob.client.errors import Aborted, ApiError, raise_for_problem
from filejob.client.uploads import Progress

CHUNK = 256 * 1024


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def validator_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part.etag")


def _resume_point(dest: Path, size: int) -> tuple[int, Any, str | None]:
    """How many bytes of the part can be offered for resuming, their running sha256, and the
    validator they were fetched under (0, a fresh hash, None: start over)."""
    part, tag = part_of(dest), validator_of(dest)
    have = part.stat().st_size if part.exists() else 0
    etag = tag.read_text().strip() if tag.exists() else None
    digest = hashlib.sha256()
    if not (etag and 0 < have <= size):
        return 0, digest, None
    with part.open("rb") as file:
        for chunk in iter(lambda: file.read(CHUNK), b""):
            digest.update(chunk)
    return have, digest, etag


def download_result(
    http: httpx.Client,
    job: dict[str, Any],
    dest: Path,
    *,
    progress: Progress | None = None,
    abort: threading.Event | None = None,
) -> Path:
    """The job's result into `dest` (overwritten if it exists: callers decide that)."""
    result = job["result"]
    size, want = int(result["size"]), str(result["sha256"])
    part, tag = part_of(dest), validator_of(dest)
    have, digest, etag = _resume_point(dest, size)
    if have == size and digest.hexdigest() != want:
        have, digest, etag = 0, hashlib.sha256(), None  # whole but wrong: fetch it again
    if have < size or have == 0:
        headers = {"Range": f"bytes={have}-", "If-Range": etag} if have and etag else {}
        with http.stream("GET", result["url"], headers=headers, follow_redirects=True) as response:
            raise_for_problem(response)
            resumed = response.status_code == 206
            if resumed and not response.headers.get("content-range", "").startswith(
                f"bytes {have}-"
            ):
                raise ApiError(0, "bad_range", f"{dest.name}: the server sent another range")
            if not resumed:  # the whole body: the part starts over, under the new validator
                have, digest = 0, hashlib.sha256()
            if progress is not None and have:
                progress(have)
            with part.open("r+b" if have else "wb") as file:
                file.seek(have)
                file.truncate()
                if not resumed:
                    _keep_validator(tag, response.headers.get("etag"))
                for chunk in response.iter_bytes(CHUNK):
                    if abort is not None and abort.is_set():
                        raise Aborted(f"the download of {dest.name} was interrupted")
                    file.write(chunk)
                    digest.update(chunk)
                    if progress is not None:
                        progress(len(chunk))
                file.flush()
                os.fsync(file.fileno())
    elif progress is not None:
        progress(have)
    if digest.hexdigest() != want:
        part.unlink(missing_ok=True)
        tag.unlink(missing_ok=True)
        raise ApiError(0, "checksum_mismatch", f"{dest.name}: sha256 differs from the job's")
    part.replace(dest)
    tag.unlink(missing_ok=True)
    return dest


def _keep_validator(tag: Path, etag: str | None) -> None:
    """Written before the first byte of a fresh part: a part on disk is never newer than its
    validator. Weak or missing validators cannot guard a resume (RFC 9110 §13.1.5)."""
    if etag and not etag.startswith("W/"):
        tag.write_text(etag + "\n")
    else:
        tag.unlink(missing_ok=True)
