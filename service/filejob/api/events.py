"""Live changes as Server-Sent Events: `/v1/jobs/{id}/events` follows one job until it is final;
`/v1/events` follows every job of the caller, for as long as the client stays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import JobsDep, LinksDep, ServicesDep
from filejob.api.problems import VALIDATION, problems
from filejob.api.schemas import JobOut, job_json
from filejob.auth.links import LinkSigner
from filejob.errors import JobNotFound
from filejob.jobs.changes import decode_cursor
from filejob.jobs.model import Job
from filejob.jobs.owner_stream import Change, OwnerStream
from filejob.jobs.watch import version_of

KEEPALIVE = 15.0  # seconds between comments on a quiet stream, so proxies keep it open
RECONNECT_MS = 1000  # the client's wait before reconnecting (the SSE `retry` field)
DRAIN_CHECK = 1.0  # seconds between two looks, on a quiet owner stream, at the server draining

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED)
events_router = APIRouter(
    prefix="/v1", tags=["jobs"], responses=VALIDATION, dependencies=DOCUMENTED
)
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`. The first event is the job as it is now (`status`, "
        "unless `Last-Event-ID` names this very state); then a `status` event on every state "
        "change and `progress` events while it runs; the stream ends after the final state.",
        "content": {"text/event-stream": {}},
    },
    **problems({401: "Missing or invalid API key", 404: "No such job", 429: "Rate limit"}),
}


def _frame(event_id: str, kind: str, data: str) -> bytes:
    """One Server-Sent Event, as both streams write them."""
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


def _progress(job_id: str, status: str, progress: float) -> str:
    """A `progress` event's data, as both streams send it."""
    return json.dumps({"id": job_id, "status": status, "progress": progress})


def _event(kind: str, job: Job, body: str) -> bytes:
    return _frame(version_of(job), kind, body)


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
                progress = _progress(job.id, job.status.value, job.progress)
                yield _event("progress", job, progress)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


_OWNER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`text/event-stream`, for as long as the client stays. A new stream "
        "starts with `ready` (`{}`, its `id` the cursor of the owner's newest change, `0` if "
        "none); a resumed one (`Last-Event-ID` or `since`) with every job changed after its "
        "cursor, as `status` events. Then a "
        "`status` event (the job as `GET /v1/jobs/{id}` shows it) when a job is new or changed,"
        " and a `progress` event (`{id, status, progress}`) when only its progress moved. Every "
        "event's `id` is a cursor to resume from; delivery is at least once.",
        "content": {"text/event-stream": {}},
    },
    **problems(
        {
            400: "`invalid_cursor`: not a cursor of this stream",
            401: "Missing or invalid API key",
            429: "Rate limit",
        }
    ),
}


def _owner_event(change: Change, links: LinkSigner) -> bytes:
    job = change.job
    if change.kind == "status":
        data = job_json(job, links).decode()
    else:
        data = _progress(job["id"], job["status"].value, job["progress"])
    return _frame(change.cursor, change.kind, data)


@events_router.get(
    "/events",
    response_class=StreamingResponse,
    responses=_OWNER_RESPONSES,
    summary="Watch all of the caller's jobs live (Server-Sent Events)",
)
async def watch_events(
    request: Request,
    caller: CallerDep,
    links: LinksDep,
    services: ServicesDep,
    since: Annotated[
        str | None, Query(description="A cursor (an event's `id`) to resume after.")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """One stream for every job of the caller: a page watching many jobs needs one connection,
    not one per job (browsers open at most 6 per server)."""
    cursor = last_event_id if last_event_id is not None else since  # a reconnect's is newer
    resume_after = decode_cursor(cursor) if cursor is not None else None  # 400 before the 200
    watcher = services.watcher

    async def stream() -> AsyncIterator[bytes]:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        async with OwnerStream(watcher, caller.owner_id, resume_after) as jobs:
            await jobs.begin()
            if resume_after is None:
                yield f"id: {jobs.cursor}\nevent: ready\ndata: {{}}\n\n".encode()
            async for change in jobs.catch_up():
                yield _owner_event(change, links)
            async for chunk in _live(jobs, links, request):
                yield chunk

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


async def _live(jobs: OwnerStream, links: LinkSigner, request: Request) -> AsyncIterator[bytes]:
    """The changes as they come, and a keepalive on a quiet stream. A server that drains
    before shutting down ends the stream (it would hold the shutdown up): the client comes
    back with its cursor, after `retry`, to a server that takes it (/readyz says which)."""
    clock = asyncio.get_running_loop().time
    quiet_until = clock() + KEEPALIVE
    while not request.app.state.draining:
        if await jobs.wait(min(DRAIN_CHECK, quiet_until - clock())):
            changes = await jobs.changes()
            for change in changes:
                yield _owner_event(change, links)
            if changes:
                quiet_until = clock() + KEEPALIVE
        elif clock() >= quiet_until:
            yield b": keepalive\n\n"
            quiet_until = clock() + KEEPALIVE
