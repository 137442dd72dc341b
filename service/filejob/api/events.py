"""/v1/jobs/{id}/events: a job's changes as Server-Sent Events, until it is final."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobOut
from filejob.errors import JobNotFound
from filejob.jobs.model import Job
from filejob.jobs.watch import version_of

KEEPALIVE = 15.0  # seconds between comments on a quiet stream, so proxies keep it open
RECONNECT_MS = 1000  # the client's wait before reconnecting (the SSE `retry` field)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED)

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`. The first event is the job as it is now (`status`, "
        "unless `Last-Event-ID` names this very state); then a `status` event on every state "
        "change and `progress` events while it runs; the stream ends after the final state.",
        "content": {"text/event-stream": {}},
    },
    **problems({401: "Missing or invalid API key", 404: "No such job", 429: "Rate limit"}),
}


def _event(kind: str, job: Job, body: str) -> bytes:
    return f"id: {version_of(job)}\nevent: {kind}\ndata: {body}\n\n".encode()


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses=_RESPONSES,
    summary="Watch a job live (Server-Sent Events)",
)
async def job_events(
    job_id: str,
    caller: CallerDep,
    jobs: JobsDep,
    links: LinksDep,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=40)] = None,
) -> StreamingResponse:
    job = await jobs.get(job_id, caller.owner_id)  # 404 before the stream starts
    watcher = services.watcher

    async def stream() -> AsyncIterator[bytes]:
        nonlocal job
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        if last_event_id != version_of(job):
            yield _event("status", job, JobOut.of(job, links).model_dump_json())
        while not job.status.is_final:
            if not await watcher.changed(job.id, job.updated_at, KEEPALIVE):
                yield b": keepalive\n\n"
                continue
            before = job
            try:
                job = await jobs.get(job_id, caller.owner_id)
            except JobNotFound:
                return  # deleted meanwhile: nothing more will happen
            if job.status is not before.status:
                yield _event("status", job, JobOut.of(job, links).model_dump_json())
            elif job.progress != before.progress:
                progress = {"id": job.id, "status": job.status.value, "progress": job.progress}
                yield _event("progress", job, json.dumps(progress))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
