"""The upload endpoint's body parsing: multipart (or a raw body) into an adoptable, hashed spool.

`UploadRoute` parses the body before FastAPI's handler runs, so that: the size limit is
enforced from Content-Length before reading, and while streaming a body without one; file parts
land in `UploadSpool`s (written once, hashed on the way, linkable into storage); and parsing
errors become our own problem+json errors. FastAPI then finds the form already parsed on the
request and validates the fields as usual. A body that is not a form, with the job's fields in
the query string, is read by raw.py into the same form instead; a JSON object of fields (an
import's) by json_body.py. Before any of it, the caller's `Idempotency-Key` is claimed
(keys.py), and released if the request fails.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from filejob.api.caller import get_caller
from filejob.api.uploads.body import (
    FORM_OVERHEAD_BYTES,
    MAX_CONTENT_TYPE_BYTES,
    UploadPolicy,
    declared_length,
    limited,
    read_error,
    refuse_when_disk_is_full,
)
from filejob.api.uploads.json_body import is_json, parse_json_body
from filejob.api.uploads.keys import claim_key, release_key
from filejob.api.uploads.pipeline import PipelinedUpload
from filejob.api.uploads.raw import is_raw, parse_raw_body
from filejob.errors import (
    MalformedMultipart,
    PayloadTooLarge,
    ShuttingDown,
    UnsupportedMediaType,
)
from filejob.storage.spool import UploadSpool
from filejob.untrusted.boundary import interpreting, parse_count

# Re-exported: the policy is built by app.py, the overhead read by tests.
__all__ = ["FORM_OVERHEAD_BYTES", "UploadPolicy", "UploadRoute", "parse_upload_form"]

# One part's headers (Content-Disposition with the filename, Content-Type, ...), all together.
MAX_PART_HEADER_BYTES = 16 * 1024
MAX_BOUNDARY_BYTES = 70  # RFC 2046 §5.1.1


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


async def parse_upload_form(request: Request, policy: UploadPolicy) -> FormData:
    raw_type = request.headers.get("content-type", "")
    if len(raw_type) > MAX_CONTENT_TYPE_BYTES:
        raise MalformedMultipart(f"The Content-Type header exceeds {MAX_CONTENT_TYPE_BYTES} bytes.")
    content_type, params = parse_options_header(raw_type)
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType(
            "An upload is a multipart/form-data body (a form that can carry a file), or the "
            "file itself as the body with the fields in the query string (?processor=...), "
            "or an import's fields as a JSON object (application/json); "
            f"this one is {content_type.decode('latin-1') or 'untyped'}.",
            accepted=["multipart/form-data"],
        )
    if not params.get(b"boundary"):
        raise MalformedMultipart("Content-Type must be multipart/form-data with a boundary.")
    if len(params[b"boundary"]) > MAX_BOUNDARY_BYTES:
        raise MalformedMultipart(f"The multipart boundary exceeds {MAX_BOUNDARY_BYTES} bytes.")
    declared = declared_length(request, policy.max_body_bytes, policy.max_file_bytes)
    refuse_when_disk_is_full(policy, declared or 0)
    parser = _SpoolingParser(
        request.headers,
        limited(request.stream(), policy.max_body_bytes, policy.body_timeout, policy.body_deadline),
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
                mapped = read_error(exc)
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


class UploadRoute(APIRoute):
    """An APIRoute whose body is parsed by `parse_upload_form`, or by `parse_raw_body` for a
    raw upload (see the module doc)."""

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
            claim = await claim_key(request, caller)
            request.state.idempotency = claim
            try:
                if claim is None or claim.owned:  # a repeat's job exists: no new quota
                    declared = parse_count(request.headers.get("content-length", ""))
                    await request.app.state.services.jobs.admission.quota(caller, declared or 0)
                return await _parse_and_handle(request, handler)
            except BaseException:
                if claim is not None:
                    await release_key(request, claim)
                raise

        return parse_then_handle


async def _parse_and_handle(
    request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Response:
    policy = request.app.state.upload_policy
    raw = is_raw(request)
    parse = parse_raw_body if raw else parse_json_body if is_json(request) else parse_upload_form
    # Starlette caches the parsed form here; FastAPI's request.form() then returns it (and
    # closes it when the request ends) instead of reading the consumed stream.
    request._form = await parse(request, policy)
    try:
        return await handler(request)
    except RequestValidationError as exc:
        if not raw:
            raise
        # A raw upload's fields came from the query string: say so where they failed.
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"][1:])} for error in exc.errors()]
        ) from exc
