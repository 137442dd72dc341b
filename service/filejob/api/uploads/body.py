"""What every way of sending a file to `POST /v1/jobs` shares while its body is read: the
policy (limits, spools), the body stream bounded in size and time, the refusals before a byte
is read (Content-Length over the limit, a full disk), and what a failed read tells the client.
The multipart parser (route.py) and the raw body (raw.py) both read through here."""

from __future__ import annotations

import asyncio
import errno
import math
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from fastapi import Request
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from filejob.errors import (
    InsufficientStorage,
    MalformedMultipart,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
)
from filejob.storage.spool import UploadSpool
from filejob.untrusted.boundary import parse_count

# Room for the non-file fields and part headers on top of the file's own limit.
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_CONTENT_TYPE_BYTES = 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What `create_app` decides about uploads; found on `app.state.upload_policy`."""

    max_file_bytes: int
    new_spool: Callable[[], UploadSpool]
    free_bytes: Callable[[], int] | None = None  # None: the backend has no such limit
    min_free_bytes: int = 0
    max_files: int = 1
    max_parts: int = 16  # fields and files together
    max_field_bytes: int = 64 * 1024
    body_timeout: float = 60.0  # seconds without a byte of body
    body_deadline: float = 3600.0  # seconds for the whole body

    @property
    def max_body_bytes(self) -> int:
        return self.max_file_bytes + FORM_OVERHEAD_BYTES


def declared_length(request: Request, limit: int, file_limit: int) -> int | None:
    """The body's Content-Length (None without one), refused before a byte is read when it
    passes `limit` (`file_limit` is the limit the client is told about)."""
    raw_length = request.headers.get("content-length")
    if raw_length is None:
        return None
    declared = parse_count(raw_length)
    if declared is None:
        raise MalformedRequest("Content-Length is not a number.")
    if declared > limit:
        raise PayloadTooLarge(
            f"The upload exceeds the limit of {file_limit} bytes.", limit=file_limit
        )
    return declared


async def limited(
    stream: AsyncGenerator[bytes, None], limit: int, idle_timeout: float, deadline: float
) -> AsyncGenerator[bytes]:
    """The body, refused once it passes `limit` bytes, stalls for `idle_timeout` seconds, or
    is still arriving `deadline` seconds after it began (a slow client holding a connection
    and a spool open, however steadily it dribbles; a proxy in front should cut such clients
    off earlier, see docs/security.md)."""
    seen = 0
    chunks = aiter(stream)
    # asyncio's own timeout and clock, not anyio's: the server runs on asyncio, and anyio's
    # cancel scope (and its per-call lookup of the running backend) cost a small upload's
    # parse a third of its CPU, two scopes per request.
    ends_at = time.monotonic() + deadline
    while True:
        left = ends_at - time.monotonic()
        try:
            async with asyncio.timeout(min(idle_timeout, max(left, 0))):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if left <= idle_timeout:
                raise RequestTimeout(
                    f"The body did not arrive within {math.ceil(deadline)} seconds."
                ) from None
            raise RequestTimeout(
                f"No body bytes arrived for {math.ceil(idle_timeout)} seconds."
            ) from None
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.", limit=limit)
        yield chunk


def read_error(exc: BaseException) -> BaseException:
    """The client-facing error for what stopped reading a body (`exc` itself if it is no
    client's)."""
    if isinstance(exc, MultiPartException):
        return MalformedMultipart(exc.message)
    if isinstance(exc, ClientDisconnect):
        return MalformedRequest("The client disconnected before the body was complete.")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("The disk filled up while receiving the upload.")
    return exc


def refuse_when_disk_is_full(policy: UploadPolicy, declared_bytes: int) -> None:
    """The free-space check: refuse before reading a byte when the disk is (nearly) full."""
    if policy.free_bytes is None:
        return
    free = policy.free_bytes()
    if free - declared_bytes < policy.min_free_bytes:
        raise InsufficientStorage(
            "Not enough free storage for this upload; try again later.",
            headers={"Retry-After": "60"},
        )
