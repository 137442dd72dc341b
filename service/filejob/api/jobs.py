"""/v1/jobs: poll, list, cancel, delete (the upload that creates a job: api/uploads/submit.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.downloads.ranges import etag_matches
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobList, JobOut, ResultLinkOut, job_json
from filejob.jobs.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED)

# Every /v1/jobs route's documented problems, the upload's among them.
PROBLEMS = problems(
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


def json_response(
    if_none_match: str | None, body: bytes, status: JobStatus, status_code: int = 200
) -> Response:
    """A job's JSON `body` with an ETag (a 304 when `if_none_match`, the request's
    If-None-Match, has it) and, while the job (in `status`) is not final, a Retry-After."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if not status.is_final:
        headers["Retry-After"] = "1" if status is JobStatus.RUNNING else "2"
    if status_code == 200 and if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


@router.get("/{job_id}", response_model=JobOut, responses=PROBLEMS, summary="Poll a job")
async def get_job(
    job_id: str,
    request: Request,
    caller: CallerDep,
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
    # One indexed read of plain columns and one serialisation: the path clients hammer.
    job = await services.jobs.poll(job_id, caller.owner_id)
    if (
        wait
        and not job["status"].is_final
        and await services.watcher.changed(job_id, job["updated_at"], wait)
    ):
        job = await services.jobs.poll(job_id, caller.owner_id)  # a 404 if deleted meanwhile
    body = job_json(job, services.links)
    return json_response(request.headers.get("if-none-match"), body, job["status"])


@router.get(
    "/{job_id}/result-link",
    response_model=ResultLinkOut,
    responses=PROBLEMS,
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
    responses=PROBLEMS,
    summary="Cancel a queued or running job; delete a finished one",
)
async def delete_job(job_id: str, caller: CallerDep, jobs: JobsDep) -> Response:
    await jobs.cancel_or_delete(job_id, caller.owner_id)
    return Response(status_code=204)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=problems(
        {
            401: "Missing or invalid API key",
            404: "No such job",
            409: "The job is final already (`job_final`, with its `job_status`)",
            429: "Rate limit reached",
            503: "The job kept changing state, or the server is shutting down",
        }
    ),
    summary="Cancel a queued or running job",
)
async def cancel_job(job_id: str, caller: CallerDep, jobs: JobsDep, links: LinksDep) -> JobOut:
    """Stops a running job (within about 2 s; a process-isolated one is terminated) and
    answers once it has stopped, with the job as it ends: `cancelled`. The job and its input
    are kept; DELETE removes them."""
    return JobOut.of(await jobs.cancel(job_id, caller.owner_id), links)
