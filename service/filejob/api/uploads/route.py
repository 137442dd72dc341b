"""The upload endpoint's body parsing: multipart into an adoptable, hashed spool.

`UploadRoute` parses the body before FastAPI's handler runs, so that: the size limit is
enforced from Content-Length before reading, and while streaming a body without one; file parts
land in `UploadSpool`s (written once, hashed on the way, linkable into storage); and parsing
errors become our own problem+json errors. FastAPI then finds the form already parsed on the
request and validates the fields as usual.
"""

from __future__ import annotations

import asyncio
import errno
import math
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from filejob.api.caller import get_caller
from filejob.api.uploads.pipeline import PipelinedUpload
from filejob.errors import (
    InsufficientStorage,
    MalformedMultipart,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    UnsupportedMediaType,
)
from filejob.storage.spool import UploadSpool
from filejob.untrusted.boundary import interpreting, parse_count

# Room for the non-file fields and part headers on top of the file's own limit.
FORM_OVERHEAD_BYTES = 256 * 1024
# One part's headers (Content-Disposition with the filename, Content-Type, ...), all together.
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_CONTENT_TYPE_BYTES = 1024
MAX_BOUNDARY_BYTES = 70  # RFC 2046 §5.1.1


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


class _SpoolingParser(MultiPartParser):
    """Starlette's parser, with each file part written to an `UploadSpool`."""

    def __init__(self, *args: Any, new_spool: Callable[[], UploadSpool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._new_spool = new_spool
        self.complete = False
        self._header_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._header_bytes = 0

    def _count_header(self, size: int) -> None:
        # Starlette accumulates part headers without a bound; a part may not hold megabytes.
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise MultiPartException(f"A part's headers exceed {MAX_PART_HEADER_BYTES} bytes.")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        super().on_header_field(data, start, end)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        super().on_header_value(data, start, end)

    def on_end(self) -> None:
        # python-multipart's finalize() accepts a body cut short; only this callback proves
        # the closing boundary arrived.
        self.complete = True

    def close_all(self) -> None:
        for file in self._files_to_close_on_error:
            file.close()

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        if part.file is None:
            return
        # Replace the (still empty, in-memory) SpooledTemporaryFile Starlette just made.
        placeholder = part.file.file
        self._files_to_close_on_error.remove(placeholder)  # type: ignore[arg-type]
        placeholder.close()
        spool = self._new_spool()
        self._files_to_close_on_error.append(spool)  # type: ignore[arg-type]
        part.file = PipelinedUpload(
            spool, size=0, filename=part.file.filename, headers=part.file.headers
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is None or not isinstance(data, bytes):
            # Fields, and python-multipart's reused look-behind buffer: copy (Starlette's way).
            super().on_part_data(data, start, end)
            return
        # A view, not a copy, of the immutable chunk uvicorn handed over.
        self._file_parts_to_write.append((part, memoryview(data)[start:end]))  # type: ignore[arg-type]


async def _limited(
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


async def parse_upload_form(request: Request, policy: UploadPolicy) -> FormData:
    raw_type = request.headers.get("content-type", "")
    if len(raw_type) > MAX_CONTENT_TYPE_BYTES:
        raise MalformedMultipart(f"The Content-Type header exceeds {MAX_CONTENT_TYPE_BYTES} bytes.")
    content_type, params = parse_options_header(raw_type)
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            "An upload is a multipart/form-data body (a form that can carry a file); "
            f"this one is {content_type.decode('latin-1') or 'untyped'}.",
            accepted=["multipart/form-data"],
        )
    if not params.get(b"boundary"):
        raise MalformedMultipart("Content-Type must be multipart/form-data with a boundary.")
    if len(params[b"boundary"]) > MAX_BOUNDARY_BYTES:
        raise MalformedMultipart(f"The multipart boundary exceeds {MAX_BOUNDARY_BYTES} bytes.")
    raw_length = request.headers.get("content-length")
    declared = None if raw_length is None else parse_count(raw_length)
    if raw_length is not None:
        if declared is None:
            raise MalformedRequest("Content-Length is not a number.")
        if declared > policy.max_body_bytes:
            raise PayloadTooLarge(
                f"The upload exceeds the limit of {policy.max_file_bytes} bytes.",
                limit=policy.max_file_bytes,
            )
    _refuse_when_disk_is_full(policy, declared or 0)
    parser = _SpoolingParser(
        request.headers,
        _limited(
            request.stream(), policy.max_body_bytes, policy.body_timeout, policy.body_deadline
        ),
        max_files=policy.max_files,
        max_fields=policy.max_parts - policy.max_files,
        max_part_size=policy.max_field_bytes,
        new_spool=policy.new_spool,
    )
    try:
        with interpreting("The multipart body", MalformedMultipart):
            try:
                form = await parser.parse()
            except (MultiPartException, ClientDisconnect, OSError) as exc:
                mapped = _parse_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
    except BaseException:
        parser.close_all()  # whatever stopped the parse (timeout, limit), no spool stays open
        raise
    if not parser.complete:
        parser.close_all()
        raise MalformedMultipart("The body ended before the closing multipart boundary.")
    for _, value in form.multi_items():
        if isinstance(value, UploadFile) and (value.size or 0) > policy.max_file_bytes:
            await form.close()
            raise PayloadTooLarge(
                f"The upload exceeds the limit of {policy.max_file_bytes} bytes.",
                limit=policy.max_file_bytes,
            )
    return form


def _parse_error(exc: BaseException) -> BaseException:
    """The client-facing error for what stopped a parse (`exc` itself if it is no client's)."""
    if isinstance(exc, MultiPartException):
        return MalformedMultipart(exc.message)
    if isinstance(exc, ClientDisconnect):
        return MalformedRequest("The client disconnected before the body was complete.")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientStorage("The disk filled up while receiving the upload.")
    return exc


def _refuse_when_disk_is_full(policy: UploadPolicy, declared_bytes: int) -> None:
    """The free-space check: refuse before reading a byte when the disk is (nearly) full."""
    if policy.free_bytes is None:
        return
    free = policy.free_bytes()
    if free - declared_bytes < policy.min_free_bytes:
        raise InsufficientStorage(
            "Not enough free storage for this upload; try again later.",
            headers={"Retry-After": "60"},
        )


class UploadRoute(APIRoute):
    """An APIRoute whose body is parsed by `parse_upload_form` (see the module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            if request.app.state.draining:  # refuse before reading a byte of the body
                raise ShuttingDown(
                    "The server is shutting down; retry in a moment (another instance, or "
                    "this one after its restart).",
                    headers={"Retry-After": "10"},
                )
            # Who is asking, and may they, before a byte of the body is read.
            caller = await get_caller(request)
            declared = parse_count(request.headers.get("content-length", ""))
            await request.app.state.services.jobs.admission.quota(caller, declared or 0)
            form = await parse_upload_form(request, request.app.state.upload_policy)
            # Starlette caches the parsed form here; FastAPI's request.form() then returns it
            # (and closes it when the request ends) instead of reading the consumed stream.
            request._form = form
            return await handler(request)

        return parse_then_handle
