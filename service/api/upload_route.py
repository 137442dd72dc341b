"""The upload endpoint's body parsing: multipart into an adoptable, hashed spool.

`UploadRoute` parses the body before FastAPI's handler runs, so that: the size limit is
enforced from Content-Length before reading, and while streaming a body without one; file parts
land in `UploadSpool`s (written once, hashed on the way, linkable into storage); and parsing
errors become our own problem+json errors. FastAPI then finds the form already parsed on the
request and validates the fields as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from fastapi import Request, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from service.errors import MalformedMultipart, MalformedRequest, PayloadTooLarge
from service.storage.spool import UploadSpool

# Room for the non-file fields and part headers on top of the file's own limit.
FORM_OVERHEAD_BYTES = 256 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What `create_app` decides about uploads; found on `app.state.upload_policy`."""

    max_file_bytes: int
    new_spool: Callable[[], UploadSpool]
    max_files: int = 1
    max_fields: int = 16
    max_field_bytes: int = 64 * 1024

    @property
    def max_body_bytes(self) -> int:
        return self.max_file_bytes + FORM_OVERHEAD_BYTES


def _mark_retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class PipelinedUpload(UploadFile):
    """The UploadFile our parser creates: hashing overlaps with receiving.

    Starlette awaits a thread hop for every chunk it writes, so receiving, hashing and writing
    run one after another. Here each chunk is appended to the spool right away, on the event
    loop, like the bare `request.stream()`-to-disk loop does (a page-cache write, which drops
    the GIL), and a worker thread hashes the bytes in 1 MiB batches meanwhile, in order, one
    batch in flight. Measured in one run against the same server with writes in the thread:
    586 vs 531 MB/s.
    """

    BATCH_BYTES = 1024 * 1024

    def __init__(self, spool: UploadSpool, **kwargs: Any) -> None:
        super().__init__(spool, **kwargs)  # type: ignore[arg-type]
        self._spool = spool
        self._batch: list[bytes | memoryview] = []
        self._batched = 0
        self._hashed_to = 0  # bytes of the spool handed to the hashing thread so far
        self._in_flight: asyncio.Future[None] | None = None

    async def write(self, data: bytes | memoryview) -> None:  # type: ignore[override]
        if self.size is not None:
            self.size += len(data)
        self._spool.store(data)
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self.BATCH_BYTES:
            await self._send_batch()

    async def _send_batch(self) -> None:
        if self._in_flight is not None:
            await self._in_flight  # keeps the hash in order and memory bounded
        batch, length = self._batch, self._batched
        self._batch, self._batched = [], 0
        offset, self._hashed_to = self._hashed_to, self._hashed_to + length
        self._in_flight = asyncio.ensure_future(
            anyio.to_thread.run_sync(self._hash_batch, batch, offset, length)
        )
        # If parsing fails, the parser closes the spool and nobody awaits this; its error
        # must not be logged as "never retrieved".
        self._in_flight.add_done_callback(_mark_retrieved)

    def _hash_batch(self, batch: list[bytes | memoryview], offset: int, length: int) -> None:
        self._spool.hash(*batch)
        self._spool.start_writeback(offset, length)

    async def _drain(self) -> None:
        if self._batch:
            await self._send_batch()
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def seek(self, offset: int) -> None:
        await self._drain()
        await super().seek(offset)

    async def read(self, size: int = -1) -> bytes:
        await self._drain()
        return await super().read(size)

    async def close(self) -> None:
        try:
            await self._drain()
        finally:
            await super().close()


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


class UploadRoute(APIRoute):
    """An APIRoute whose body is parsed by `parse_upload_form` (see the module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            form = await parse_upload_form(request, request.app.state.upload_policy)
            # Starlette caches the parsed form here; FastAPI's request.form() then returns it
            # (and closes it when the request ends) instead of reading the consumed stream.
            request._form = form
            return await handler(request)

        return parse_then_handle
