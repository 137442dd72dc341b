"""POST /v1/jobs: upload a file and start a job. Its body is parsed by `UploadRoute`
(api/uploads/route.py) before the handler runs; the job's other routes are in api/jobs.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, Response, UploadFile

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.jobs import PROBLEMS, json_response
from filejob.api.problems import VALIDATION
from filejob.api.schemas import JobOut, job_json
from filejob.api.uploads.owned import OwnedUpload
from filejob.api.uploads.route import UploadRoute
from filejob.jobs.admission import JobRequest
from filejob.jobs.repository import POLL_COLUMNS

router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    route_class=UploadRoute,
    responses=VALIDATION,
    dependencies=DOCUMENTED,
)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=PROBLEMS,
    summary="Upload a file and start a job",
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
) -> Response:
    # From here on the job, not the request, owns the open upload (see api/uploads/owned.py).
    upload = OwnedUpload.take(file)
    asked = JobRequest(
        processor.strip(),
        params,
        delete_after_download,
        max_attempts,
        timeout_seconds,
        callback_url or None,
    )
    try:
        job = await jobs.accept(upload, asked, caller)
    except BaseException:
        await upload.release()
        raise
    background.add_task(jobs.executor.schedule, job.id, upload)
    services.metrics.uploaded.inc(job.input_size)
    # The poll's serialisation (`job_json`: JobOut's JSON, byte for byte, without building
    # and validating the model).
    body = job_json({name: getattr(job, name) for name in POLL_COLUMNS}, links)
    response = json_response(request.headers.get("if-none-match"), body, job.status, 202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response
