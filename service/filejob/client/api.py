"""A small synchronous client of filejob's HTTP API, for the `filejob` command's client side.

Streams both ways (an upload is read from disk in chunks, a download written as it arrives),
reports bytes through callbacks, and turns every refusal into `ApiError` carrying the
server's problem+json `code` and message.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

Progress = Callable[[int], None]  # called with the number of bytes just moved
# The API's final job statuses, as it spells them: the client speaks HTTP, not the server's code.
FINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
CHUNK = 256 * 1024


class ApiError(Exception):
    """The server refused: `status`, its problem `code` and `detail`."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})"


class _Counting:
    """A file that reports how much has been read from it (httpx reads uploads in chunks)."""

    def __init__(self, file: BinaryIO, progress: Progress | None) -> None:
        self.file = file
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        if self.progress is not None and data:
            self.progress(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        problem = response.json()
        code, detail = str(problem.get("code", "error")), str(problem.get("detail", ""))
    except ValueError:
        code, detail = "http_error", response.text[:200] or response.reason_phrase
    raise ApiError(response.status_code, code, detail or response.reason_phrase)


class FilejobClient:
    def __init__(self, server: str, api_key: str | None = None, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FilejobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        _raise_for_problem(response)
        return response.json() if response.content else None

    # -- jobs -------------------------------------------------------------------------------

    def submit(
        self,
        path: Path,
        processor: str,
        params: dict[str, Any] | None = None,
        *,
        delete_after_download: bool = False,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        data = {"processor": processor}
        if params:
            data["params"] = json.dumps(params)
        if delete_after_download:
            data["delete_after_download"] = "true"
        with path.open("rb") as file:
            files = {"file": (path.name, _Counting(file, progress), "application/octet-stream")}
            return self._json("POST", "/v1/jobs", data=data, files=files)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._json("GET", "/v1/jobs", params=params)["items"]

    def cancel(self, job_id: str) -> None:
        self._json("DELETE", f"/v1/jobs/{job_id}")

    def processors(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/processors")["items"]

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's state on every change (SSE) until it is final; reconnects with
        `Last-Event-ID` if the connection drops."""
        last: str | None = None
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            try:
                with self.http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None
                ) as response:
                    _raise_for_problem(response)
                    event: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line:
                            name, _, value = line.partition(":")
                            event[name] = value.removeprefix(" ")
                            continue
                        if "data" in event:
                            last = event.get("id", last)
                            state = json.loads(event["data"])
                            yield state
                            if state["status"] in FINAL:
                                return
                        event = {}
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass  # dropped: reconnect, telling the server what we saw last
            state = self.job(job_id)
            if state["status"] in FINAL:
                yield state
                return

    def download(
        self, job: dict[str, Any], dest: Path, *, progress: Progress | None = None
    ) -> Path:
        """The job's result into `dest`, through `dest + ".part"`: an interrupted download
        resumes from what the part file holds (Range, guarded by If-Range), and the whole file
        must match the job's sha256 before it takes its name."""
        result = job["result"]
        part = dest.with_name(dest.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        digest = hashlib.sha256()
        if 0 < have <= result["size"]:
            with part.open("rb") as file:
                for chunk in iter(lambda: file.read(CHUNK), b""):
                    digest.update(chunk)
        else:
            have = 0
        if progress is not None and have:
            progress(have)
        headers = {"Range": f"bytes={have}-"} if 0 < have < result["size"] else {}
        if have < result["size"] or result["size"] == 0:
            with self.http.stream("GET", result["url"], headers=headers) as response:
                _raise_for_problem(response)
                if response.status_code != 206:  # the whole body: start the part file again
                    have, digest = 0, hashlib.sha256()
                with part.open("r+b" if have else "wb") as file:
                    file.seek(have)
                    file.truncate()
                    for chunk in response.iter_bytes(CHUNK):
                        file.write(chunk)
                        digest.update(chunk)
                        if progress is not None:
                            progress(len(chunk))
                    file.flush()
                    os.fsync(file.fileno())
        if digest.hexdigest() != result["sha256"]:
            part.unlink(missing_ok=True)
            raise ApiError(0, "checksum_mismatch", f"{dest.name}: sha256 differs from the job's")
        part.replace(dest)
        return dest
