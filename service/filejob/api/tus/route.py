"""/v1/uploads: resumable uploads, tus 1.0.0 (core, creation, creation-with-upload,
creation-defer-length, expiration, checksum, termination, concatenation). Thin: tus headers in,
a call to `ResumableUploads` (resumable/service.py), tus headers out. A finished upload's job
is linked from its answers (`Link: </v1/jobs/{id}>; rel="monitor"`)."""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette._exception_handler import wrap_app_handling_exceptions
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.problems import VALIDATION, error_problem, problems
from filejob.api.tus import headers as tus
from filejob.api.uploads.body import UploadPolicy, limited, read_error, refuse_when_disk_is_full
from filejob.api.uploads.digests import sha256_of_repr_digest
from filejob.api.uploads.keys import REPLAYED, claim_key, release_key
from filejob.auth.principal import Principal
from filejob.errors import (
    FilejobError,
    InsufficientStorage,
    MalformedRequest,
    ShuttingDown,
    UnsupportedMediaType,
)
from filejob.jobs.admission import JobRequest
from filejob.jobs.idempotency import Claim, IdempotencyKeys, upload_fingerprint
from filejob.resumable.errors import InvalidConcat, UploadIsFinal
from filejob.resumable.model import ResumableUpload
from filejob.resumable.service import ResumableUploads

T = TypeVar("T")


class TusRoute(APIRoute):
    """Every answer carries `Tus-Resumable` (tus: "MUST be included in every response"),
    refusals too: a domain error is rendered here, as problem+json, like everywhere else; a
    method the path does not take (405) and any other refusal the app's handlers render are
    answered through this route too, so they carry it as well."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except FilejobError as exc:
                return error_problem(exc, request.url.path)

        return tus_handler

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_tus(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Tus-Resumable"] = tus.TUS_VERSION
            await send(message)

        route = super().handle
        await wrap_app_handling_exceptions(route, Request(scope))(scope, receive, send_tus)


router = APIRouter(
    prefix="/v1/uploads",
    tags=["uploads"],
    route_class=TusRoute,
    responses=VALIDATION,
    dependencies=DOCUMENTED,
)

PROBLEMS = problems(
    {
        400: "Malformed tus headers or metadata, unsupported checksum algorithm, a partial "
        "upload not finished",
        401: "Missing or invalid API key",
        403: "Bytes sent to a final upload (concatenation)",
        404: "No such upload",
        408: "The body stalled, or did not arrive within the body deadline",
        409: "Upload-Offset is not the upload's offset",
        410: "The upload expired",
        412: "Tus-Resumable is not 1.0.0",
        413: "Upload too large, past its Upload-Length, or the storage quota would be exceeded",
        415: "A PATCH body that is not application/offset+octet-stream; a file type the "
        "processor does not take",
        422: "Invalid job fields in Upload-Metadata, unknown processor, invalid params",
        423: "Another request is writing this upload",
        429: "Rate limit or active-jobs limit reached",
        460: "The body does not match Upload-Checksum",
        503: "Database busy, or the server is shutting down",
        507: "Not enough storage space",
    }
)


async def get_uploads(request: Request) -> ResumableUploads:
    """The app's `ResumableUploads`, built by the lifespan (shared with its sweeper)."""
    uploads: ResumableUploads = request.app.state.resumable
    return uploads


UploadsDep = Annotated[ResumableUploads, Depends(get_uploads)]


def _refuse_while_draining(request: Request) -> None:
    if request.app.state.draining:
        raise ShuttingDown(
            "The server is shutting down; retry in a moment (another instance, or this one "
            "after its restart).",
            headers={"Retry-After": "10"},
        )


async def _storing(stored: Awaitable[T]) -> T:
    """`stored`, with a full disk (or quota) answered 507 as every upload's is."""
    try:
        return await stored
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("The disk filled up while storing the upload.") from exc
        raise


async def _body(request: Request, policy: UploadPolicy) -> AsyncGenerator[bytes]:
    """The request's body as it arrives, bounded in time as every upload body is."""
    stream = limited(
        request.stream(), policy.max_file_bytes, policy.body_timeout, policy.body_deadline
    )
    try:
        async for chunk in stream:
            yield chunk
    except ClientDisconnect as exc:
        raise read_error(exc) from None


async def _write(
    request: Request, uploads: ResumableUploads, caller: Principal, upload_id: str, offset: int
) -> ResumableUpload:
    """The request's body written to the upload at `offset` (PATCH, creation-with-upload)."""
    policy: UploadPolicy = request.app.state.upload_policy
    declared = tus.count(request.headers, "Content-Length")
    length = tus.count(request.headers, "Upload-Length")
    if length is not None:  # too large is 413 whatever the disk holds
        uploads.check_length(length)
    refuse_when_disk_is_full(policy, declared or 0)
    upload = await _storing(
        uploads.write(
            upload_id,
            caller,
            offset,
            _body(request, policy),
            content_length=declared,
            length=length,
            checksum=tus.checksum(request.headers),
        )
    )
    if upload.job_id and upload.received != offset:  # this request made the job
        request.app.state.services.metrics.uploaded.inc(upload.received)
    return upload


# `/v1/uploads/` is taken as `/v1/uploads` (tusd does so too): clients are often configured
# with an endpoint ending in a slash, and the app redirects no slashes (see app.py).
@router.options("/", include_in_schema=False)
@router.options("", summary="What this tus server supports", include_in_schema=False)
async def tus_options(request: Request) -> Response:
    # The limit uploads are held to: the configured one, or the store's if lower (S3: as
    # many parts as a multipart upload may have).
    max_size = str((await get_uploads(request)).max_bytes)
    return Response(status_code=204, headers={**tus.discovery(), "Tus-Max-Size": max_size})


@router.post("/", status_code=201, include_in_schema=False)
@router.post(
    "", status_code=201, responses=PROBLEMS, summary="Create a resumable upload (tus creation)"
)
async def create_upload(request: Request, caller: CallerDep, uploads: UploadsDep) -> Response:
    _refuse_while_draining(request)
    tus.require_version(request.headers)
    claim = await claim_key(request, caller)
    if claim is None:
        return await _create(request, caller, uploads, None)
    claim.fingerprint = upload_fingerprint(
        {name: request.headers.get(name) for name in _SHAPING_HEADERS}
    )
    if not claim.owned:  # a repeat: the upload the first request made, as it is now
        IdempotencyKeys.same_request(claim)
        upload = await uploads.get(claim.upload_id or "", caller.owner_id)
        location = {"Location": tus.upload_path(upload.id), REPLAYED: "true"}
        return Response(status_code=201, headers={**location, **tus.described(upload)})
    try:
        return await _create(request, caller, uploads, claim)
    except BaseException:
        await release_key(request, claim)  # no-op once the upload's row has committed
        raise


# The headers that make a creation what it is: a repeat with the same key must send the same.
_SHAPING_HEADERS = (
    "upload-length",
    "upload-defer-length",
    "upload-metadata",
    "upload-concat",
    "repr-digest",
)


async def _create(
    request: Request, caller: Principal, uploads: ResumableUploads, claim: Claim | None
) -> Response:
    kind, part_ids = tus.concat(request.headers)
    if kind == "final":
        return await _create_final(request, caller, uploads, part_ids, claim)
    length = tus.creation_length(request.headers)
    header = request.headers.get("upload-metadata")
    if kind == "partial":  # a part: its job is the final upload's
        tus.parse_metadata(header or "")
        meta = tus.Metadata(JobRequest(""), None, None)
    else:
        meta = tus.job_metadata(header)
    digest = sha256_of_repr_digest(request.headers.get("repr-digest"))
    job_request = dataclasses.replace(meta.request, input_sha256=digest)
    if length is not None:  # too large is 413 whatever the disk holds
        uploads.check_length(length)
    refuse_when_disk_is_full(request.app.state.upload_policy, length or 0)
    upload = await _storing(
        uploads.create(
            caller,
            length,
            job_request,
            filename=meta.filename,
            content_type=meta.filetype,
            metadata=header,
            partial=kind == "partial",
            claim=claim,
        )
    )
    location = {"Location": tus.upload_path(upload.id)}
    if request.headers.get("content-type") == tus.OFFSET_STREAM:  # creation-with-upload
        try:
            upload = await _write(request, uploads, caller, upload.id, 0)
        except FilejobError as exc:
            exc.headers = {**exc.headers, **location}  # the client can resume from HEAD
            raise
    return Response(status_code=201, headers={**location, **tus.described(upload)})


async def _create_final(
    request: Request,
    caller: Principal,
    uploads: ResumableUploads,
    part_ids: list[str],
    claim: Claim | None,
) -> Response:
    """A final upload (concatenation): made whole of its parts at once, with its job."""
    if "upload-length" in request.headers:
        raise InvalidConcat("A final upload's length is its parts'; send no Upload-Length.")
    if request.headers.get("content-type") == tus.OFFSET_STREAM:
        raise UploadIsFinal("A final upload is made of its parts; it takes no bytes.")
    header = request.headers.get("upload-metadata")
    meta = tus.job_metadata(header)
    digest = sha256_of_repr_digest(request.headers.get("repr-digest"))
    upload = await _storing(
        uploads.concatenate(
            caller,
            part_ids,
            dataclasses.replace(meta.request, input_sha256=digest),
            filename=meta.filename,
            content_type=meta.filetype,
            metadata=header,
            claim=claim,
        )
    )
    request.app.state.services.metrics.uploaded.inc(upload.received)
    location = {"Location": tus.upload_path(upload.id)}
    return Response(status_code=201, headers={**location, **tus.described(upload)})


@router.options("/{upload_id}", include_in_schema=False)
async def tus_options_of(request: Request) -> Response:
    return await tus_options(request)


@router.head(
    "/{upload_id}", responses=PROBLEMS, summary="An upload's offset (tus core: where to resume)"
)
async def upload_offset(
    upload_id: str, request: Request, caller: CallerDep, uploads: UploadsDep
) -> Response:
    tus.require_version(request.headers)
    upload = await uploads.get(upload_id, caller.owner_id)
    response = Response(status_code=200, headers={"Cache-Control": "no-store"})
    response.headers.update(tus.described(upload))
    if upload.length is None:
        response.headers["Upload-Defer-Length"] = "1"
    else:
        response.headers["Upload-Length"] = str(upload.length)
    if upload.upload_metadata:
        response.headers["Upload-Metadata"] = upload.upload_metadata
    return response


@router.patch(
    "/{upload_id}",
    status_code=204,
    responses=PROBLEMS,
    summary="Send bytes at the upload's offset (tus core)",
)
async def write_upload(
    upload_id: str, request: Request, caller: CallerDep, uploads: UploadsDep
) -> Response:
    _refuse_while_draining(request)
    tus.require_version(request.headers)
    if request.headers.get("content-type") != tus.OFFSET_STREAM:
        raise UnsupportedMediaType(
            f"A PATCH body is {tus.OFFSET_STREAM}.", accepted=[tus.OFFSET_STREAM]
        )
    offset = tus.count(request.headers, "Upload-Offset")
    if offset is None:
        raise MalformedRequest("Upload-Offset is required.")
    upload = await _write(request, uploads, caller, upload_id, offset)
    response = Response(status_code=204)
    response.headers.update(tus.described(upload))
    return response


@router.delete(
    "/{upload_id}", status_code=204, responses=PROBLEMS, summary="Abort an upload (tus termination)"
)
async def delete_upload(
    upload_id: str, request: Request, caller: CallerDep, uploads: UploadsDep
) -> Response:
    tus.require_version(request.headers)
    await uploads.terminate(upload_id, caller.owner_id)
    return Response(status_code=204)


class UploadOut(BaseModel):
    id: str
    offset: int = Field(description="Bytes received and kept: where to resume.")
    length: int | None = Field(description="The upload's size; null while deferred.")
    expires_at: datetime = Field(
        description="Unfinished: when it expires. Finished: until when this URL answers."
    )
    job_id: str | None = Field(description="The job made of the finished upload.")


@router.get(
    "/{upload_id}",
    response_model=UploadOut,
    responses=PROBLEMS,
    summary="An upload's state and, once finished, its job",
)
async def get_upload(upload_id: str, caller: CallerDep, uploads: UploadsDep) -> Response:
    upload = await uploads.get(upload_id, caller.owner_id)
    body = UploadOut(
        id=upload.id,
        offset=upload.received,
        length=upload.length,
        expires_at=upload.expires_at,
        job_id=upload.job_id,
    )
    response = Response(
        body.model_dump_json(),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
    response.headers.update(tus.described(upload))
    return response


@router.api_route(
    "/{upload_id}/{rest:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    include_in_schema=False,
)
async def no_such_path(request: Request) -> Response:
    """Any deeper path under /v1/uploads: 404 as elsewhere, answered here so that it carries
    `Tus-Resumable` too."""
    raise HTTPException(status_code=404)
