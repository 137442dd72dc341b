"""Streaming a stored result to the client: Range, conditionals, and knowing when the whole
body really went out (which is what delete-after-download waits for).

Starlette's FileResponse is not used because: it opens the file by path when sending starts
(a result deleted in between would fail mid-request), it ignores If-None-Match, and its
background task runs even when the client disconnected mid-body. uvicorn's `send()` returns
silently after a disconnect, so completeness is judged by listening for `http.disconnect`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from email.utils import format_datetime

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from filejob.api.downloads.digests import digest_fields
from filejob.api.downloads.ranges import ByteRange, etag_matches, parse_range
from filejob.jobs.model import Job
from filejob.storage.base import BlobReader, DownloadHeaders
from filejob.untrusted.filenames import content_disposition

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024

# Served inline only when a browser will display, not execute, them (no HTML, SVG, XML).
INLINE_SAFE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/avif",
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/json",
    }
)

OnComplete = Callable[[], Awaitable[None]]
OnSent = Callable[[int], None]  # told the size of each chunk of the result sent


class BlobResponse(Response):
    """Sends `reader`'s bytes [start, end] and closes it; calls `on_complete` only after a
    full-body GET was handed to the server without the client disconnecting."""

    def __init__(
        self,
        reader: BlobReader,
        *,
        status_code: int,
        headers: dict[str, str],
        byte_range: ByteRange | None,
        send_body: bool,
        on_complete: OnComplete | None,
        on_sent: OnSent | None = None,
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.reader = reader
        self.byte_range = byte_range or ByteRange(0, reader.size - 1)
        self.send_body = send_body
        self.on_complete = on_complete
        self.on_sent = on_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            complete = await self._send(receive, send)
        finally:
            self.reader.close()
        if complete and self.on_complete is not None:
            try:
                await self.on_complete()
            except Exception:
                log.exception("after-download cleanup failed")

    async def _send(self, receive: Receive, send: Send) -> bool:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        length = self.byte_range.length if self.reader.size else 0
        if not self.send_body or length == 0:
            await send({"type": "http.response.body", "body": b""})
            return self.send_body
        disconnected = anyio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            offset, remaining = self.byte_range.start, length
            while remaining:
                chunk = await anyio.to_thread.run_sync(
                    self.reader.read_at, offset, min(CHUNK, remaining)
                )
                # The thread hop above let the watcher run: stop on a disconnect it saw.
                if not chunk or disconnected.is_set():
                    break
                offset += len(chunk)
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
                if self.on_sent is not None:
                    self.on_sent(len(chunk))
            # Judge now, before yielding: once the last body message is sent, servers answer
            # receive() with http.disconnect, which would read as the client leaving.
            complete = remaining == 0 and not disconnected.is_set()
            tg.cancel_scope.cancel()
        return complete


def download_headers(job: Job, *, inline: bool) -> DownloadHeaders:
    """The result's type, name and caching, as every download of it says them: streamed here,
    or asked of the store by a presigned URL."""
    content_type = job.result_content_type or "application/octet-stream"
    return DownloadHeaders(
        content_type=content_type,
        # The runner cleaned the name when it stored the result (runner._settle).
        content_disposition=content_disposition(
            job.result_filename or "result", inline=inline and content_type in INLINE_SAFE
        ),
        cache_control="private, no-cache",
    )


def result_response(
    request: Request,
    job: Job,
    reader: BlobReader,
    *,
    inline: bool,
    on_complete: OnComplete | None,
    on_sent: OnSent | None = None,
) -> Response:
    """The response for GET/HEAD of a job's result, honouring If-None-Match, If-Range, Range
    and the RFC 9530 Want-*-Digest fields.

    Only a 200 GET counts as a complete download; 206, 304, 416 and HEAD never do. A 304 has no
    Repr-Digest: RFC 9110 §15.4.5 asks it to carry no representation metadata beyond the
    validators, and its ETag is the same sha-256 in hex."""
    etag = f'"{job.result_sha256}"'
    described = download_headers(job, inline=inline)
    content_type = described.content_type
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": described.content_disposition,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": described.cache_control,
    }
    if job.finished_at:
        headers["Last-Modified"] = format_datetime(job.finished_at, usegmt=True)

    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        reader.close()
        return Response(status_code=304, headers=headers)

    size = reader.size
    byte_range: ByteRange | None = None
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (
        if_range is None or if_range.strip() in (etag, headers.get("Last-Modified"))
    ):
        try:
            byte_range = parse_range(range_header, size)
        except Exception:
            reader.close()
            raise
    is_head = request.method == "HEAD"
    headers["Content-Type"] = content_type
    headers |= digest_fields(
        request.headers, job.result_sha256, whole_body=byte_range is None and not is_head
    )
    if byte_range is None:
        headers["Content-Length"] = str(size)
        return BlobResponse(
            reader,
            status_code=200,
            headers=headers,
            byte_range=None,
            send_body=not is_head,
            on_complete=None if is_head else on_complete,
            on_sent=on_sent,
        )
    headers["Content-Length"] = str(byte_range.length)
    headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
    return BlobResponse(
        reader,
        status_code=206,
        headers=headers,
        byte_range=byte_range,
        send_body=not is_head,
        on_complete=None,
        on_sent=on_sent,
    )
