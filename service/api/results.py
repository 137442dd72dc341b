"""/v1/jobs/{id}/result: stream the result, then clean up if the job asked for it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response

from service.api.deps import JobsDep
from service.api.download import result_response
from service.errors import PROBLEM_JSON

router = APIRouter(prefix="/v1/jobs", tags=["results"])


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The result", "content": {"application/octet-stream": {}}},
    206: {"description": "Part of the result"},
    304: {"description": "Not modified"},
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
    responses=_RESPONSES,
)
async def download_result(
    job_id: str,
    request: Request,
    jobs: JobsDep,
    disposition: Literal["attachment", "inline"] = "attachment",
) -> Response:
    job, reader = await jobs.open_result(job_id)

    async def cleanup() -> None:
        await jobs.expire(job.id)

    return result_response(
        request,
        job,
        reader,
        inline=disposition == "inline",
        on_complete=cleanup if job.delete_after_download else None,
    )
