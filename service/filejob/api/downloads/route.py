"""/v1/jobs/{id}/result: stream the (first) result, then clean up if the job asked for it.
The routes of each result and of all of them (api/downloads/results.py) are included here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from filejob.api.caller import DOCUMENTED, get_caller
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.downloads import results
from filejob.api.downloads.access import RESPONSES, redirect_to_store
from filejob.api.downloads.stream import ResultFile, result_response
from filejob.api.problems import VALIDATION
from filejob.jobs.result_files import first_result_id

router = APIRouter(
    prefix="/v1/jobs", tags=["results"], responses=VALIDATION, dependencies=DOCUMENTED
)


@router.head("/{job_id}/result", operation_id="head_result", responses=RESPONSES)
@router.get(
    "/{job_id}/result",
    operation_id="download_result",
    summary="Download a job's result (Range, If-Range, If-None-Match)",
    description="With an API key, or with no key through a signed link (`expires` and `sig`, "
    "as found in the job's `result.url` or issued by `/result-link`).",
    responses=RESPONSES,
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

    file, inline = ResultFile.first_of(job), disposition == "inline"
    redirect = await redirect_to_store(request, services, job, job.result_key, file, inline)
    if redirect is not None:
        reader.close()
        return redirect

    async def cleanup() -> None:
        first = first_result_id(job)
        if first is None:
            await jobs.expire(job.id)
        else:  # with several results, the job's files go once each was downloaded
            await jobs.results.sent_whole(job.id, [first])

    return result_response(
        request,
        file,
        reader,
        inline=inline,
        on_complete=cleanup if job.delete_after_download else None,
        on_sent=services.metrics.downloaded.inc,
    )


router.include_router(results.router)
