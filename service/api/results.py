"""/v1/jobs/{id}/result: stream the result, then clean up if the job asked for it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from service.api.auth import get_caller
from service.api.deps import JobsDep, LinksDep
from service.api.download import result_response
from service.errors import PROBLEM_JSON

router = APIRouter(prefix="/v1/jobs", tags=["results"])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The result", "content": {"application/octet-stream": {}}},
    206: {"description": "Part of the result"},
    304: {"description": "Not modified"},
    401: {"description": "Missing or invalid API key", "content": {PROBLEM_JSON: {}}},
    403: {"description": "Invalid or expired signed link", "content": {PROBLEM_JSON: {}}},
    404: {"description": "No such job", "content": {PROBLEM_JSON: {}}},
    409: {"description": "Not finished, failed or cancelled", "content": {PROBLEM_JSON: {}}},
    410: {"description": "The result was removed", "content": {PROBLEM_JSON: {}}},
    416: {"description": "Range not satisfiable", "content": {PROBLEM_JSON: {}}},
}


@router.head("/{job_id}/result", operation_id="head_result", responses=_RESPONSES)
@router.get(
    "/{job_id}/result",
    operation_id="download_result",
    summary="Download a job's result (Range, If-Range, If-None-Match)",
    description="With an API key, or with no key through a signed link (`expires` and `sig`, "
    "as found in the job's `result.url` or issued by `/result-link`).",
    responses=_RESPONSES,
)
async def download_result(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    links: LinksDep,
    disposition: Literal["attachment", "inline"] = "attachment",
    expires: Annotated[str | None, Query(max_length=20)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    if expires is not None or sig is not None:
        # A signed link is the whole authorisation: it names one job's result.
        links.verify(job_id, expires or "", sig or "")
        job, reader = await jobs.open_result_by_link(job_id)
    else:
        caller = await get_caller(request)
        job, reader = await jobs.open_result(job_id, caller.owner_id)

    async def cleanup() -> None:
        await jobs.expire(job.id)

    return result_response(
        request,
        job,
        reader,
        inline=disposition == "inline",
        on_complete=cleanup if job.delete_after_download else None,
    )
