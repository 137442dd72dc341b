"""POST /v1/jobs: upload a file (or name one to import by URL) and start a job. Its body (a
form, the file itself, or a JSON object) is parsed by `UploadRoute` (api/uploads/route.py)
before the handler runs, and its Idempotency-Key claimed there; the job's other routes are in
api/jobs.py."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Header, Request, Response, UploadFile

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.jobs import json_response
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobOut, job_json
from filejob.api.uploads.digests import expected_sha256, sha256_of_repr_digest
from filejob.api.uploads.json_body import JSON_BODY
from filejob.api.uploads.keys import REPLAYED
from filejob.api.uploads.owned import OwnedUpload
from filejob.api.uploads.raw import is_raw
from filejob.api.uploads.route import UploadRoute
from filejob.auth.principal import Principal
from filejob.jobs.admission import JobRequest
from filejob.jobs.idempotency import Claim
from filejob.jobs.imports import InputSourceConflict
from filejob.jobs.model import Job
from filejob.jobs.repository import POLL_COLUMNS
from filejob.jobs.service import JobService

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    route_class=UploadRoute,
    responses=VALIDATION,
    dependencies=DOCUMENTED,
)

PROBLEMS = problems(
    {
        400: "Malformed request, multipart body, Repr-Digest or Idempotency-Key",
        401: "Missing or invalid API key",
        408: "The upload stalled, or did not arrive within the body deadline",
        409: "A request with the same Idempotency-Key is still in flight",
        413: "Upload too large, or the storage quota would be exceeded",
        415: "Not an upload this server takes, or a file type the processor does not take",
        422: "Invalid fields, unknown processor, invalid params, empty file, a digest the "
        "upload does not match, an Idempotency-Key used for another request, both a file and "
        "a source_url (or neither), or a source_url that is invalid or not allowed",
        429: "Rate limit or active-jobs limit reached",
        503: "Database busy, or the server is shutting down",
        507: "Not enough storage space",
    }
)

# The other ways in: the file itself as the body, the fields in the query string; or, for an
# import, the fields as a JSON object. Listed after the form, so generated clients keep the
# form as their way to call this.
OTHER_BODIES = {
    "requestBody": {
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": JSON_BODY},
        }
    }
}
DESCRIPTION = """\
The file and the job's fields as a `multipart/form-data` form, or the file itself as the body
(any type but a form: its `Content-Type` is the file's) with the fields as query parameters
(`?processor=checksum&params=...`) and the file's name in `?filename=` or
`Content-Disposition: attachment; filename=...`.

`sha256` (a form field or query parameter) or, with a raw body, `Repr-Digest: sha-256=:...:`
(RFC 9530): the upload is refused (`422 digest_mismatch`) unless its bytes have that digest.

`source_url` instead of the file: the server fetches the file from that http(s) URL as the
job's first phase (`phase: fetching`, `source.fetched_bytes`), then processes it. Send it as a
form field, as a query parameter with an empty body, or in a JSON body
(`Content-Type: application/json`, the fields as one object). A file and a `source_url`
together (or neither) are refused: `422 file_or_source_url`.

`Idempotency-Key`: a repeat with the same key and the same request gets the first one's job
(`Idempotent-Replayed: true`) and makes no other; see the API docs."""


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=PROBLEMS,
    summary="Upload a file (or import one by URL) and start a job",
    description=DESCRIPTION,
    openapi_extra=OTHER_BODIES,
)
async def submit_job(
    request: Request,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    background: BackgroundTasks,
    processor: Annotated[str, Form(min_length=1, description="Processor name.")],
    # `format: binary` beside FastAPI's `contentMediaType`: what code generators (such as
    # openapi-python-client) read as a file to upload rather than a string.
    file: Annotated[
        UploadFile | None,
        File(
            description="The file to process (or give `source_url` instead).",
            json_schema_extra={"format": "binary"},
        ),
    ] = None,
    source_url: Annotated[
        str | None,
        Form(
            max_length=2048,
            description="Import: the http(s) URL to fetch the file from, instead of `file`.",
        ),
    ] = None,
    params: Annotated[str | None, Form(description="Processor params, a JSON object.")] = None,
    delete_after_download: Annotated[bool, Form()] = False,
    max_attempts: Annotated[
        int | None,
        Form(ge=1, description="Most attempts for this job; capped by FILEJOB_MAX_ATTEMPTS."),
    ] = None,
    timeout_seconds: Annotated[
        float | None,
        Form(
            gt=0,
            description="Seconds one attempt may take (default: the processor's); capped by "
            "FILEJOB_MAX_JOB_SECONDS. An import's fetch is part of its first attempt.",
        ),
    ] = None,
    callback_url: Annotated[
        str | None,
        Form(
            max_length=2048,
            description="POSTed the job's JSON, signed, when the job is final.",
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        Form(
            pattern="^[0-9a-fA-F]{64}$",
            description="The file's SHA-256 (hex): refused unless the upload (or the fetched "
            "file) has it.",
        ),
    ] = None,
    reuse: Annotated[
        bool,
        Form(
            description="Succeed at once with a copy of the result of an earlier succeeded "
            "job of the same key with the same processor, params and input sha-256, if any."
        ),
    ] = False,
    # Both headers are read by the route before the body (see api/uploads/route.py); named
    # here for the OpenAPI document.
    idempotency_key: Annotated[
        str | None,
        Header(
            description="A key of up to 255 printable ASCII characters: a repeat of this "
            "request with the same key gets the same job."
        ),
    ] = None,
    repr_digest: Annotated[
        str | None,
        Header(description="With a raw body: the file's digest, `sha-256=:<base64>:`."),
    ] = None,
) -> Response:
    if (file is None) == (source_url is None):
        # A file part left here is the request's still: closed with it.
        raise InputSourceConflict(
            "Send the file (a form's `file`, or the body itself) or a `source_url` to import "
            "it from, not both and not neither."
        )
    asked = JobRequest(
        processor.strip(),
        params,
        delete_after_download,
        max_attempts,
        timeout_seconds,
        callback_url or None,
        sha256,
        source_url=source_url,
        reuse=reuse,
    )
    claim: Claim | None = request.state.idempotency
    if file is None:
        job = await jobs.accept_import(asked, caller, **({"claim": claim} if claim else {}))
        if claim is None or not claim.replayed:
            background.add_task(jobs.executor.schedule, job.id)
    else:
        job = await _accept_upload(request, file, asked, repr_digest, caller, jobs, background)
        if claim is None or not claim.replayed:
            services.metrics.uploaded.inc(job.input_size)
    # The poll's serialisation (`job_json`: JobOut's JSON, byte for byte, without building
    # and validating the model).
    body = job_json({name: getattr(job, name) for name in POLL_COLUMNS}, links)
    response = json_response(request.headers.get("if-none-match"), body, job.status, 202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if claim is not None and claim.replayed:
        response.headers[REPLAYED] = "true"
    return response


async def _accept_upload(
    request: Request,
    file: UploadFile,
    asked: JobRequest,
    repr_digest: str | None,
    caller: Principal,
    jobs: JobService,
    background: BackgroundTasks,
) -> Job:
    """The job of an uploaded file, accepted, and its run scheduled with the upload still
    open (unless the request repeats an earlier one)."""
    # From here on the job, not the request, owns the open upload (see api/uploads/owned.py).
    upload = OwnedUpload.take(file)
    claim: Claim | None = request.state.idempotency
    try:
        # A form's Repr-Digest would be the whole form's (RFC 9530), not the file's: ignored.
        repr_sha256 = sha256_of_repr_digest(repr_digest) if is_raw(request) else None
        asked = dataclasses.replace(
            asked, input_sha256=expected_sha256(asked.input_sha256, repr_sha256)
        )
        job = await jobs.accept(upload, asked, caller, **({"claim": claim} if claim else {}))
    except BaseException:
        await upload.release()
        raise
    if claim is not None and claim.replayed:
        await upload.release()  # the first request's job stands; these bytes are not kept
    else:
        background.add_task(jobs.executor.schedule, job.id, upload)
    return job
