"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can work now)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from filejob.api.deps import ServicesDep
from filejob.api.problems import problem
from filejob.errors import PROBLEM_JSON

router = APIRouter(tags=["health"])

_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Not ready: `checks` names what failed (`database`, `storage`, "
        "`free_space`, `executor`, or `draining` while shutting down)",
        "content": {PROBLEM_JSON: {}},
    }
}


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready for work: database, storage, space, executor",
    responses=_READY_RESPONSES,
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks = await services.readiness.check()
    if request.app.state.draining:
        checks["draining"] = "shutting down: new uploads are refused"
    failing = {name: outcome for name, outcome in checks.items() if outcome != "ok"}
    if not failing:
        return JSONResponse({"status": "ready", "checks": checks})
    detail = "; ".join(f"{name}: {outcome}" for name, outcome in failing.items())
    headers = {"Retry-After": "5"}
    return problem(503, "not_ready", "Not ready", detail, request.url.path, headers, checks=checks)
