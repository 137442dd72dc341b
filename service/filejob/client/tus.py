"""A file sent as a tus 1.0.0 upload (docs/uploads.md): created with `POST /v1/uploads`, then
sent by `PATCH`es from the offset the server acknowledged, resumed after any cut, and turned
into a job by its last byte.

- The upload's URL is kept in the URL storage (url_storage.py) from its creation until its job
  is known: the same command, run again after Ctrl+C or a crash, resumes it (`HEAD` tells
  from where) and sends only what the server does not have. A kept URL the server no longer
  knows (404, or 410 once expired) is forgotten and the upload starts over.
- A network failure or a "not now" answer (retry.py) is tried again after a growing wait,
  from the offset a `HEAD` gives: the server keeps the bytes of a cut `PATCH`.
- The creation carries an `Idempotency-Key` (the same on each of its tries), so a creation
  whose answer was lost makes no second upload on a server that honours it.
- The body is read from the file as it goes (never a whole chunk in memory); Ctrl+C stops it
  at its next block with `Aborted`, and the URL stays kept for the next run.
- The job: the `Link: <...>; rel="monitor"` of the last `PATCH` (or of `HEAD`, for an upload
  finished by an earlier run), else `GET /v1/uploads/{id}`'s `job_id`.

Built on the client's own httpx connections rather than tuspy's uploader, whose requests have
no timeout (a connection that goes silent hangs it for good), which reads each chunk whole
into memory and has no way to stop a chunk midway, and whose creation is never retried.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from filejob.client.errors import Aborted, ApiError, raise_for_problem
from filejob.client.retry import Backoff
from filejob.client.url_storage import UploadUrls

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 32 * 1024 * 1024  # bytes per PATCH: each ends with an acknowledged offset
BLOCK = 256 * 1024  # bytes read from the file at a time
_MONITOR = re.compile(r'<([^>]*)>\s*;\s*rel="?monitor"?', re.IGNORECASE)

Position = Callable[[int], None]  # called with how many bytes of the file are sent so far


def encode_metadata(metadata: Mapping[str, str]) -> str:
    """Upload-Metadata: `key base64(value)` pairs, comma-separated."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode('ascii')}"
        for key, value in metadata.items()
    )


def monitored_job(link: str | None) -> str | None:
    """The job id of a `Link: </v1/jobs/{id}>; rel="monitor"` header."""
    match = _MONITOR.search(link or "")
    return match.group(1).rstrip("/").rsplit("/", 1)[-1] if match else None


@dataclass
class TusUpload:
    """One file's upload, from wherever an earlier run left it to its job."""

    http: httpx.Client
    path: Path
    metadata: Mapping[str, str]
    key: str  # its fingerprint in `urls`
    urls: UploadUrls
    idempotency_key: str
    position: Position | None = None
    abort: threading.Event | None = None
    backoff: Backoff = field(default_factory=Backoff)
    sent: int = field(default=0, init=False)  # bytes sent by this run, acknowledged or not
    _job: str | None = field(default=None, init=False)

    def run(self) -> str:
        """Upload what the server lacks; the id of the job the upload made."""
        size = self.path.stat().st_size
        resumed = self._resume()
        if resumed is None:
            url, offset = self._create(size), 0
        else:
            url, offset = resumed
        self._moved(offset)
        while offset < size:
            try:
                offset = self._patch(url, offset, min(CHUNK, size - offset))
            except Aborted:
                raise
            except Exception as exc:
                self.backoff.wait_after(exc, self.abort)
                offset = self._offset_after_failure(url, offset)
            else:
                self.backoff.reset()
            self._moved(offset)
        job = self._job or self._job_of(url)
        self.urls.forget(self.key)
        return job

    def _moved(self, offset: int) -> None:
        if self.position is not None:
            self.position(offset)

    def _resume(self) -> tuple[str, int] | None:
        """The kept upload and its offset; None if there is none (any more)."""
        url = self.urls.get(self.key)
        if url is None:
            return None
        try:
            return url, self._head(url)
        except ApiError as exc:
            if exc.status not in (404, 410):
                raise
        self.urls.forget(self.key)
        return None

    def _offset_after_failure(self, url: str, before: int) -> int:
        """The server's offset after a failed PATCH; progress since `before` resets the
        tries (a connection that keeps being cut, but moves on each time, is not given up)."""
        offset = self._head(url)
        if offset > before:
            self.backoff.reset()
        return offset

    def _retrying(self, request: Callable[[], httpx.Response]) -> httpx.Response:
        """`request`'s answer, tried again as retry.py says."""

        def answered() -> httpx.Response:
            response = request()
            raise_for_problem(response)
            return response

        return self.backoff.call(answered, self.abort)

    def _create(self, size: int) -> str:
        headers = {
            **TUS,
            "Upload-Length": str(size),
            "Upload-Metadata": encode_metadata(self.metadata),
            "Idempotency-Key": self.idempotency_key,
        }
        response = self._retrying(lambda: self.http.post("/v1/uploads", headers=headers))
        self.backoff.reset()
        location = response.headers.get("location")
        if not location:
            raise ApiError(response.status_code, "no_location", "the server made no upload URL")
        url = str(response.url.join(location))
        self.urls.put(self.key, url)
        self._job = monitored_job(response.headers.get("link"))  # an empty file's, at once
        return url

    def _head(self, url: str) -> int:
        """The server's offset (tried again as retry.py says); the job, if it is finished."""
        response = self._retrying(lambda: self.http.head(url, headers=TUS))
        self._job = monitored_job(response.headers.get("link")) or self._job
        return self._offset_of(response)

    def _patch(self, url: str, offset: int, length: int) -> int:
        headers = {
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            "Content-Length": str(length),
        }
        response = self.http.patch(url, headers=headers, content=self._body(offset, length))
        raise_for_problem(response)
        self._job = monitored_job(response.headers.get("link")) or self._job
        return self._offset_of(response)

    def _body(self, offset: int, length: int) -> Iterator[bytes]:
        """`length` bytes of the file from `offset`, block by block, stoppable."""
        with self.path.open("rb") as file:
            file.seek(offset)
            left = length
            while left:
                self._check_abort()
                block = file.read(min(BLOCK, left))
                if not block:
                    raise ApiError(0, "file_changed", f"{self.path} shrank during its upload")
                left -= len(block)
                self.sent += len(block)
                yield block
                self._moved(offset + length - left)

    def _check_abort(self) -> None:
        if self.abort is not None and self.abort.is_set():
            raise Aborted(f"the upload of {self.path.name} was interrupted")

    @staticmethod
    def _offset_of(response: httpx.Response) -> int:
        raw = response.headers.get("upload-offset", "")
        if not raw.isdigit():
            raise ApiError(response.status_code, "no_offset", "the server sent no Upload-Offset")
        return int(raw)

    def _job_of(self, url: str) -> str:
        """The finished upload's job, as `GET /v1/uploads/{id}` tells it."""
        state = self._retrying(lambda: self.http.get(url)).json()
        job = state.get("job_id") if isinstance(state, dict) else None
        if not job:
            raise ApiError(0, "no_job", f"the upload of {self.path.name} made no job")
        return str(job)
