"""What every download of a job's results shares: its documented responses, who may download,
and the redirect to the store's own presigned URL where one can serve it."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from filejob.api.caller import get_caller
from filejob.api.deps import Services
from filejob.api.downloads.stream import ResultFile, download_headers
from filejob.api.problems import problems
from filejob.auth.links import LinkSigner
from filejob.jobs.model import Job
from filejob.jobs.repository import ANY_OWNER, PollOwner

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

RESPONSES: dict[int | str, dict[str, Any]] = {
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


async def download_owner(
    request: Request, links: LinkSigner, path: str, expires: str | None, sig: str | None
) -> PollOwner:
    """Whose job a download at `path` may read: anyone's with a signed link to that path
    (the link is the whole authorisation), else the caller's."""
    if expires is not None or sig is not None:
        links.verify_path(path, expires or "", sig or "")
        return ANY_OWNER
    return (await get_caller(request)).owner_id


async def redirect_to_store(
    request: Request,
    services: Services,
    job: Job,
    key: str | None,
    file: ResultFile,
    inline: bool,
) -> Response | None:
    """A redirect to a presigned URL of the store for the result stored under `key`, where
    the store signs them and the download need not be streamed here; else None."""
    presigner = services.presigner
    # Only a download the server streams itself can tell when it is complete, which
    # delete-after-download needs; a presigned URL is for GET alone (HEAD is signed apart).
    if presigner is None or request.method != "GET" or job.delete_after_download or not key:
        return None
    url = await presigner.presigned_get(
        key,
        services.settings.s3_presign_ttl,
        # What the streamed download says, but its ETag (the sha256) and nosniff: S3 cannot
        # be told to answer with those.
        download_headers(file, inline=inline),
    )
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
