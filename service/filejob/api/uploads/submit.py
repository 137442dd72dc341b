"""POST /v1/jobs: upload a file and start a job. Its body (a form, or the file itself) is
parsed by `UploadRoute` (api/uploads/route.py) before the handler runs, and its
Idempotency-Key claimed there; the job's other routes are in api/jobs.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Header, Request, Response, UploadFile

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.jobs import json_response
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobOut, job_json
from filejob.api.uploads.digests import expected_sha256, sha256_of_repr_digest
from filejob.api.uploads.keys import REPLAYED
from filejob.api.uploads.owned import OwnedUpload
from filejob.api.uploads.raw import is_raw
from filejob.api.uploads.route import UploadRoute
from filejob.jobs.admission import JobRequest
from filejob.jobs.idempotency import Claim
from filejob.jobs.repository import POLL_COLUMNS

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
        "upload does not match, or an Idempotency-Key used for another request",
        429: "Rate limit or active-jobs limit reached",
        503: "Database busy, or the server is shutting down",
        507: "Not enough storage space",
    }
)

# The other way in: the file itself as the body, the fields in the query string. Listed after
# the form, so generated clients keep the form as their way to call this.
RAW_BODY = {
    "requestBody": {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    }
}
DESCRIPTION = """\
The file and the job's fields as a `multipart/form-data` form, or the file itself as the body
(any type but a form: its `Content-Type` is the file's) with the fields as query parameters
(`?processor=checksum&params=...`) and the file's name in `?filename=` or
`Content-Disposition: attachment; filename=...`.

`sha256` (a form field or query parameter) or, with a raw body, `Repr-Digest: sha-256=:...:`
(RFC 9530): the upload is refused (`422 digest_mismatch`) unless its bytes have that digest.

`Idempotency-Key`: a repeat with the same key and the same request gets the first one's job
(`Idempotent-Replayed: true`) and makes no other; see the API docs."""


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=PROBLEMS,
    summary="Upload a file and start a job",
    description=DESCRIPTION,
    openapi_extra=RAW_BODY,
)
async def submit_job(
    request: Request,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    background: BackgroundTasks,
    # `format: binary` beside FastAPI's `contentMediaType`: what code generators (such as
    # openapi-python-client) read as a file to upload rather than a string.
    file: Annotated[
        UploadFile, File(description="The file to process.", json_schema_extra={"format": "binary"})
    ],
    processor: Annotated[str, Form(min_length=1, description="Processor name.")],
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
            "FILEJOB_MAX_JOB_SECONDS.",
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
            description="The file's SHA-256 (hex): refused unless the upload has it.",
        ),
    ] = None,
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
    # From here on the job, not the request, owns the open upload (see api/uploads/owned.py).
    upload = OwnedUpload.take(file)
    claim: Claim | None = request.state.idempotency
    try:
        # A form's Repr-Digest would be the whole form's (RFC 9530), not the file's: ignored.
        repr_sha256 = sha256_of_repr_digest(repr_digest) if is_raw(request) else None
        asked = JobRequest(
            processor.strip(),
            params,
            delete_after_download,
            max_attempts,
            timeout_seconds,
            callback_url or None,
            expected_sha256(sha256, repr_sha256),
        )
        job = await jobs.accept(upload, asked, caller, **({"claim": claim} if claim else {}))
    except BaseException:
        await upload.release()
        raise
    if claim is not None and claim.replayed:
        await upload.release()  # the first request's job stands; these bytes are not kept
    else:
        background.add_task(jobs.executor.schedule, job.id, upload)
        services.metrics.uploaded.inc(job.input_size)
    # The poll's serialisation (`job_json`: JobOut's JSON, byte for byte, without building
    # and validating the model).
    body = job_json({name: getattr(job, name) for name in POLL_COLUMNS}, links)
    response = json_response(request.headers.get("if-none-match"), body, job.status, 202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if claim is not None and claim.replayed:
        response.headers[REPLAYED] = "true"
    return response
