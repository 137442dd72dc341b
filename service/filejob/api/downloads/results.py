"""/v1/jobs/{id}/results: a job's results listed, each streamed as `/result` streams the first
(Range, conditionals, digests, inline rules, signed links, a redirect to the store), and all of
them in one zip. With delete-after-download, the job's files go once every result was sent
whole, by these downloads, `/result` or the zip (jobs/result_files.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from filejob.api.caller import CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.downloads.access import RESPONSES, download_owner, redirect_to_store
from filejob.api.downloads.stream import BodyResponse, ResultFile, result_response
from filejob.api.downloads.zip import ResultsZip
from filejob.api.problems import problems
from filejob.api.schemas import ResultList, results_document
from filejob.auth.links import results_path
from filejob.untrusted.filenames import content_disposition

router = APIRouter()

_ONE: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    **problems({404: "No such job, or no such result of it"}),
}
_ZIP: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every result, in a zip", "content": {"application/zip": {}}},
    **problems(
        {
            401: "Missing or invalid API key",
            404: "No such job",
            409: "Not finished, failed or cancelled",
            410: "The results were removed",
            429: "Rate limit reached",
        }
    ),
}


@router.get(
    "/{job_id}/results",
    response_model=ResultList,
    operation_id="list_results",
    summary="List a job's results",
    description="The job's `results`, as its JSON shows them: each with a signed link.",
    responses=problems(
        {
            401: "Missing or invalid API key",
            404: "No such job",
            409: "Not finished, failed or cancelled",
            410: "The results were removed",
            429: "Rate limit reached",
        }
    ),
)
async def list_results(
    job_id: str, caller: CallerDep, jobs: JobsDep, links: LinksDep
) -> ResultList:
    job = await jobs.results.job(job_id, caller.owner_id)
    return ResultList.model_validate(
        {"items": results_document({"id": job.id, "results": job.results}, links)}
    )


@router.head("/{job_id}/results.zip", operation_id="head_results_zip", responses=_ZIP)
@router.get(
    "/{job_id}/results.zip",
    operation_id="download_results_zip",
    summary="Download every result of a job in one zip",
    description="Made while it is sent (members stored, not compressed; no Range). A complete "
    "download counts as a download of every result for delete-after-download.",
    responses=_ZIP,
)
async def download_zip(
    job_id: str, request: Request, caller: CallerDep, jobs: JobsDep, services: ServicesDep
) -> Response:
    job = await jobs.results.job(job_id, caller.owner_id)
    stored = await jobs.results.stored(job)
    if len(stored) < len(job.results or ()):
        raise jobs.no_result(await jobs.get_any(job.id))  # removed since it was read
    archive = ResultsZip(jobs.storage, stored)

    async def cleanup() -> None:
        await jobs.results.sent_whole(job.id, [result.id for result in stored])

    headers = {
        "Content-Type": "application/zip",
        "Content-Length": str(archive.length),
        "Content-Disposition": content_disposition(f"{job.id}.zip", inline=False),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    }
    is_head = request.method == "HEAD"
    return BodyResponse(
        archive,
        status_code=200,
        headers=headers,
        send_body=not is_head,
        on_complete=cleanup if job.delete_after_download and not is_head else None,
        on_sent=services.metrics.downloaded.inc,
    )


@router.head("/{job_id}/results/{result_id}", operation_id="head_one_result", responses=_ONE)
@router.get(
    "/{job_id}/results/{result_id}",
    operation_id="download_one_result",
    summary="Download one of a job's results (Range, If-Range, If-None-Match)",
    description="As `/result`, for any of the job's results: with an API key, or with no key "
    "through the signed link in its `url`.",
    responses=_ONE,
)
async def download_one(
    job_id: str,
    result_id: str,
    request: Request,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    disposition: Literal["attachment", "inline"] = "attachment",
    expires: Annotated[str | None, Query(max_length=20)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    owner = await download_owner(request, links, results_path(job_id, result_id), expires, sig)
    opened = await jobs.results.open(job_id, result_id, owner)
    job, result = opened.job, opened.result
    file, inline = ResultFile.one_of(job, result), disposition == "inline"
    redirect = await redirect_to_store(request, services, job, result.key, file, inline)
    if redirect is not None:
        opened.reader.close()
        return redirect

    async def cleanup() -> None:
        await jobs.results.sent_whole(job.id, [result.id])

    return result_response(
        request,
        file,
        opened.reader,
        inline=inline,
        on_complete=cleanup if job.delete_after_download else None,
        on_sent=services.metrics.downloaded.inc,
    )
