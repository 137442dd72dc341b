"""/v1/jobs/{id}/result: stream the result, then clean up if the job asked for it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from filejob.api.caller import DOCUMENTED, get_caller
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.downloads.stream import download_headers, result_response
from filejob.api.problems import VALIDATION, problems

router = APIRouter(
    prefix="/v1/jobs", tags=["results"], responses=VALIDATION, dependencies=DOCUMENTED
)


_DIGESTS: dict[str, dict[str, Any]] = {
    "Repr-Digest": {
        "description": "RFC 9530 sha-256 of the whole result, the same on 200, 206 and HEAD "
        "(none if Want-Repr-Digest rules sha-256 out)",
        "schema": {
            "type": "string",
            "example": "sha-256=:uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=:",
        },
    },
    "Content-Digest": {
        "description": "The same value, on a full 200 GET when Want-Content-Digest asks for "
        "sha-256",
        "schema": {"type": "string"},
    },
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result",
        "content": {"application/octet-stream": {}},
        "headers": _DIGESTS,
    },
    206: {"description": "Part of the result", "headers": {"Repr-Digest": _DIGESTS["Repr-Digest"]}},
    304: {"description": "Not modified"},
    307: {"description": "Download it from the object store (FILEJOB_S3_PRESIGNED_DOWNLOADS)"},
    **problems(
        {
            401: "Missing or invalid API key",
            403: "Invalid or expired signed link",
            404: "No such job",
            409: "Not finished, failed or cancelled",
            410: "The result was removed",
            416: "Range not satisfiable",
            429: "Rate limit reached",
        }
    ),
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
    services: ServicesDep,
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

    presigner = services.presigner
    # Only a download the server streams itself can tell when it is complete, which
    # delete-after-download needs; a presigned URL is for GET alone (HEAD is signed apart).
    if presigner is not None and request.method == "GET" and not job.delete_after_download:
        reader.close()
        url = await presigner.presigned_get(
            job.result_key or "",
            services.settings.s3_presign_ttl,
            # What the streamed download says, but its ETag (the sha256) and nosniff: S3 cannot
            # be told to answer with those.
            download_headers(job, inline=disposition == "inline"),
        )
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})

    async def cleanup() -> None:
        await jobs.expire(job.id)

    return result_response(
        request,
        job,
        reader,
        inline=disposition == "inline",
        on_complete=cleanup if job.delete_after_download else None,
        on_sent=services.metrics.downloaded.inc,
    )
