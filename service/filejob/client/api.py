"""A small synchronous client of filejob's HTTP API, for the `filejob` command's client side.

Streams both ways (an upload is read from disk in chunks, a download written as it arrives),
reports bytes through callbacks, can stop a transfer midway, and turns every refusal into
`ApiError` carrying the server's problem+json `code` and message.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from filejob.client.errors import Aborted, ApiError, raise_for_problem
from filejob.client.transfer import download_result
from filejob.client.uploads import Progress, StoppableReader

__all__ = ["FINAL", "Aborted", "ApiError", "FilejobClient", "Progress"]

# The API's final job statuses, as it spells them: the client speaks HTTP, not the server's code.
FINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
MAX_PAGE = 500  # the most jobs GET /v1/jobs answers at once


def job_form(
    processor: str, params: dict[str, Any] | None, *, delete_after_download: bool = False
) -> dict[str, str]:
    """A job's fields as POST /v1/jobs's form (and tus's Upload-Metadata) carry them."""
    data = {"processor": processor}
    if params:
        data["params"] = json.dumps(params)
    if delete_after_download:
        data["delete_after_download"] = "true"
    return data


class FilejobClient:
    def __init__(self, server: str, api_key: str | None = None, timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FilejobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        raise_for_problem(response)
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
        abort: threading.Event | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload `path` as a new job. Once `abort` is set the upload stops at its next chunk
        with `Aborted`, before the body is whole: no job is created. With `idempotency_key`,
        a repeat of this call gets the job the first one made (see the API's Idempotency)."""
        data = job_form(processor, params, delete_after_download=delete_after_download)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with path.open("rb") as file:
            body = StoppableReader(file, progress, abort)
            files = {"file": (path.name, body, "application/octet-stream")}
            return self._json("POST", "/v1/jobs", data=data, files=files, headers=headers)

    def submit_url(
        self,
        source_url: str,
        processor: str,
        params: dict[str, Any] | None = None,
        *,
        delete_after_download: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """A new job of the file at `source_url`, which the server fetches: a multipart form of
        the job's fields and `source_url`, and no file part."""
        data = job_form(processor, params, delete_after_download=delete_after_download)
        fields = [
            (name, (None, value)) for name, value in {**data, "source_url": source_url}.items()
        ]
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/jobs", files=fields, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(
        self, status: str | None = None, limit: int = 50, *, processor: str | None = None
    ) -> list[dict[str, Any]]:
        """The newest `limit` jobs (at most one page: 500)."""
        return self.jobs_page(status=status, processor=processor, limit=limit)[0]

    def jobs_page(
        self,
        *,
        status: str | None = None,
        processor: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of jobs, newest first, and the cursor of the next (None: the last)."""
        query = {"status": status, "processor": processor, "limit": limit, "cursor": cursor}
        params = {key: value for key, value in query.items() if value is not None}
        page = self._json("GET", "/v1/jobs", params=params)
        return page["items"], page["next_cursor"]

    def iter_jobs(
        self,
        *,
        status: str | None = None,
        processor: str | None = None,
        page_size: int = MAX_PAGE,
    ) -> Iterator[dict[str, Any]]:
        """Every job, newest first, page after page (`next_cursor`) for as long as it is read."""
        cursor: str | None = None
        while True:
            items, cursor = self.jobs_page(
                status=status, processor=processor, limit=min(page_size, MAX_PAGE), cursor=cursor
            )
            yield from items
            if cursor is None:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job: the job, cancelled. A final one is refused with
        `ApiError` code `job_final` (its status in `problem["job_status"]`)."""
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete a final job with its files (a queued or running one is cancelled instead)."""
        self._json("DELETE", f"/v1/jobs/{job_id}")

    def result_link(self, job_id: str, ttl: int | None = None) -> dict[str, Any]:
        """`{"url", "expires_at"}`, the url made absolute: it works without an API key."""
        params = {"ttl": ttl} if ttl else {}
        link = self._json("GET", f"/v1/jobs/{job_id}/result-link", params=params)
        return {**link, "url": str(self.http.base_url.join(link["url"]))}

    def processors(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/processors")["items"]

    def limits(self) -> dict[str, Any] | None:
        """The caller's limits and usage; None from a server too old to say."""
        try:
            return self._json("GET", "/v1/limits")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

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
                    raise_for_problem(response)
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
        self,
        job: dict[str, Any],
        dest: Path,
        *,
        progress: Progress | None = None,
        abort: threading.Event | None = None,
    ) -> Path:
        """The job's result into `dest`, through `dest + ".part"`: resumed when the part holds
        the beginning of this very result, restarted otherwise, and checked against the job's
        sha256 before it takes its name (see `transfer`)."""
        return download_result(self.http, job, dest, progress=progress, abort=abort)
