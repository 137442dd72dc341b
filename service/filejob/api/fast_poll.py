"""The plain poll, `GET /v1/jobs/{id}` without a query, answered before FastAPI's routing.

It is the request clients send most (several per job, from every client), and the framework's
share of it (matching the route table, solving dependencies, wrapping the call) cost more than
the read and the serialisation together. This middleware does what the route does, in the same
order and with the same parts: the caller (`caller_of`, cached on the request as the route's
dependency caches it), the job (`JobService.poll`), the body (`job_json`), the response
(`json_response`: ETag, 304, Retry-After) and, for a domain error, the same problem+json
(`error_problem`). Anything else goes on to the app: other methods and paths, a query (the
long poll's `wait`), a mount under a root path, and any unexpected error, so that the route
answers it as it answers every other request (the caller stays cached: it is counted once).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import URL
from starlette.types import ASGIApp, Receive, Scope, Send

from filejob.api import jobs
from filejob.api.caller import caller_of
from filejob.api.problems import error_problem
from filejob.api.schemas import job_json
from filejob.errors import FilejobError

_PATH = re.compile(r"/v1/jobs/([^/]+)")
# The route it stands for, where the route's own requests carry it (metrics label by its path).
_ROUTE = next(
    route
    for route in jobs.router.routes
    if getattr(route, "path", None) == "/v1/jobs/{job_id}"
    and "GET" in getattr(route, "methods", ())
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class FastPoll:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            _PATH.fullmatch(scope["path"])
            if scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and not scope.get("root_path")
            else None
        )
        services: Any = getattr(scope["app"].state, "services", None) if found else None
        if found is None or services is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = _ROUTE
        try:
            caller = await caller_of(
                services.auth, scope.setdefault("state", {}), _header(scope, b"authorization")
            )
            job = await services.jobs.poll(found[1], caller.owner_id)
            response = jobs.json_response(
                _header(scope, b"if-none-match"), job_json(job, services.links), job["status"]
            )
        except FilejobError as exc:
            response = error_problem(exc, URL(scope=scope).path)  # as the route says it
        except Exception:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
