"""/v1/jobs: accept, poll, list, cancel/delete."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, Request, Response, UploadFile

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.downloads.ranges import etag_matches
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobList, JobOut, ResultLinkOut
from filejob.api.uploads.owned import OwnedUpload
from filejob.api.uploads.route import UploadRoute
from filejob.jobs.admission import JobRequest
from filejob.jobs.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED)
upload_router = APIRouter(
    prefix="/v1/jobs",
    tags=["jobs"],
    route_class=UploadRoute,
    responses=VALIDATION,
    dependencies=DOCUMENTED,
)

_PROBLEMS = problems(
    {
        400: "Malformed request or multipart body",
        401: "Missing or invalid API key",
        404: "No such job",
        408: "The upload stalled, or did not arrive within the body deadline",
        409: "The job has no result (not finished, failed or cancelled)",
        410: "The result was removed",
        413: "Upload too large, or the storage quota would be exceeded",
        415: "Not a multipart/form-data upload, or a file type the processor does not take",
        422: "Invalid fields, unknown processor, invalid params or empty file",
        429: "Rate limit or active-jobs limit reached",
        503: "Database busy, or the server is shutting down",
        507: "Not enough storage space",
    }
)


def _job_response(request: Request, job: JobOut, status_code: int = 200) -> Response:
    body = job.model_dump_json().encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if not job.status.is_final:
        headers["Retry-After"] = "1" if job.status is JobStatus.RUNNING else "2"
    if status_code == 200:
        inm = request.headers.get("if-none-match")
        if inm is not None and etag_matches(inm, etag):
            return Response(status_code=304, headers=headers)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


@upload_router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=_PROBLEMS,
    summary="Upload a file and start a job",
)
async def submit_job(
    request: Request,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="The file to process.")],
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
    # From here on the job, not the request, owns the open upload (see filejob/uploadfile.py).
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
    response = _job_response(request, JobOut.of(job, links), status_code=202)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


@router.get("/{job_id}", response_model=JobOut, responses=_PROBLEMS, summary="Poll a job")
async def get_job(
    job_id: str,
    request: Request,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    wait: Annotated[
        float | None,
        Query(
            ge=0,
            le=60,
            description="Long poll: answer as soon as the job's status or progress changes, "
            "or after this many seconds with the job as it is.",
        ),
    ] = None,
) -> Response:
    job = await jobs.get(job_id, caller.owner_id)
    if (
        wait
        and not job.status.is_final
        and await services.watcher.changed(job.id, job.updated_at, wait)
    ):
        job = await jobs.get(job_id, caller.owner_id)  # a 404 if it was deleted meanwhile
    return _job_response(request, JobOut.of(job, links))


@router.get(
    "/{job_id}/result-link",
    response_model=ResultLinkOut,
    responses=_PROBLEMS,
    summary="A fresh signed link to the result, usable without an API key",
)
async def result_link(
    job_id: str,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    ttl: Annotated[int | None, Query(ge=1, description="Seconds the link stays valid.")] = None,
) -> ResultLinkOut:
    job = await jobs.result_job(job_id, caller.owner_id)
    link = links.result_link(job.id, ttl=min(ttl or links.default_ttl, links.max_ttl))
    return ResultLinkOut(url=link.url, expires_at=datetime.fromtimestamp(link.expires, UTC))


@router.get("", response_model=JobList, summary="List jobs, newest first")
async def list_jobs(
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    status: JobStatus | None = None,
    processor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> JobList:
    items, next_cursor = await jobs.list(
        owner_id=caller.owner_id, limit=limit, cursor=cursor, status=status, processor=processor
    )
    return JobList(items=[JobOut.of(j, links) for j in items], next_cursor=next_cursor)


@router.delete(
    "/{job_id}",
    status_code=204,
    responses=_PROBLEMS,
    summary="Cancel a queued or running job; delete a finished one",
)
async def delete_job(job_id: str, caller: CallerDep, jobs: JobsDep) -> Response:
    await jobs.cancel_or_delete(job_id, caller.owner_id)
    return Response(status_code=204)
