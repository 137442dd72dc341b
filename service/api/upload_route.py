"""The upload endpoint's body parsing: multipart into an adoptable, hashed spool.

`UploadRoute` parses the body before FastAPI's handler runs, so that: the size limit is
enforced from Content-Length before reading, and while streaming a body without one; file parts
land in `UploadSpool`s (written once, hashed on the way, linkable into storage); and parsing
errors become our own problem+json errors. FastAPI then finds the form already parsed on the
request and validates the fields as usual.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from service.api.pipelined_upload import PipelinedUpload
from service.errors import (
    InsufficientStorage,
    MalformedMultipart,
    MalformedRequest,
    PayloadTooLarge,
    ShuttingDown,
)
from service.storage.spool import UploadSpool

# Room for the non-file fields and part headers on top of the file's own limit.
FORM_OVERHEAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What `create_app` decides about uploads; found on `app.state.upload_policy`."""

    max_file_bytes: int
    new_spool: Callable[[], UploadSpool]
    free_bytes: Callable[[], int] | None = None  # None: the backend has no such limit
    min_free_bytes: int = 0
    max_files: int = 1
    max_fields: int = 16
    max_field_bytes: int = 64 * 1024

    @property
    def max_body_bytes(self) -> int:
        return self.max_file_bytes + FORM_OVERHEAD_BYTES


class _SpoolingParser(MultiPartParser):
    """Starlette's parser, with each file part written to an `UploadSpool`."""

    def __init__(self, *args: Any, new_spool: Callable[[], UploadSpool], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._new_spool = new_spool
        self.complete = False

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


async def _limited(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.", limit=limit)
        yield chunk


async def parse_upload_form(request: Request, policy: UploadPolicy) -> FormData:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise MalformedMultipart("Content-Type must be multipart/form-data with a boundary.")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number.")
        if int(declared) > policy.max_body_bytes:
            raise PayloadTooLarge(
                f"The upload exceeds the limit of {policy.max_file_bytes} bytes.",
                limit=policy.max_file_bytes,
            )
    _admit(policy, int(declared) if declared is not None else 0)
    parser = _SpoolingParser(
        request.headers,
        _limited(request.stream(), policy.max_body_bytes),
        max_files=policy.max_files,
        max_fields=policy.max_fields,
        max_part_size=policy.max_field_bytes,
        new_spool=policy.new_spool,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise MalformedMultipart(exc.message) from exc
    except ClientDisconnect as exc:
        raise MalformedRequest("The client disconnected before the body was complete.") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("The disk filled up while receiving the upload.") from exc
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


def _admit(policy: UploadPolicy, declared_bytes: int) -> None:
    """Admission control: refuse before reading a byte when the disk is (nearly) full."""
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
            form = await parse_upload_form(request, request.app.state.upload_policy)
            # Starlette caches the parsed form here; FastAPI's request.form() then returns it
            # (and closes it when the request ends) instead of reading the consumed stream.
            request._form = form
            return await handler(request)

        return parse_then_handle
