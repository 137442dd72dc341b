"""/v1/limits: what the caller may do (the limits admission applies to them) and how much of
it they use now, so a client can refuse a doomed upload before sending it."""

from __future__ import annotations

from fastapi import APIRouter

from filejob.api.caller import DOCUMENTED, CallerDep
from filejob.api.deps import ServicesDep
from filejob.api.problems import problems
from filejob.api.schemas import LimitsOut

router = APIRouter(
    prefix="/v1/limits",
    tags=["limits"],
    dependencies=DOCUMENTED,
    responses=problems({401: "Missing or invalid API key", 429: "Rate limit reached"}),
)


@router.get("", response_model=LimitsOut, summary="The caller's limits and usage")
async def get_limits(caller: CallerDep, services: ServicesDep) -> LimitsOut:
    # The key's own limits, else the server's defaults (resolved when the key was
    # authenticated: see auth/service.py); the anonymous caller has none.
    active, stored = await services.jobs.usage(caller.owner_id)
    return LimitsOut(
        max_upload_bytes=services.settings.max_upload_bytes,
        max_active_jobs=caller.max_active_jobs,
        max_storage_bytes=caller.max_storage_bytes,
        rate_limit_per_minute=caller.rate_limit if not caller.is_anonymous else None,
        active_jobs=active,
        storage_used_bytes=stored,
    )
