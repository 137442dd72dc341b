"""Errors as RFC 9457 problem+json: the handlers that render every error the app raises, and
how error responses are documented in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from filejob.errors import (
    PROBLEM_JSON,
    FilejobError,
    InsufficientStorage,
    ValidationFailed,
)

# Where the one Problem schema lives in the OpenAPI document (`api/openapi.py` puts it there).
PROBLEM_REF: dict[str, Any] = {"$ref": "#/components/schemas/Problem"}

_STRINGS = {"type": "array", "items": {"type": "string"}}

# Every error body the server sends: RFC 9457's members, `code`, and the extension members
# some codes add (each named with the codes that carry it). Extensions are omitted, never
# null, where they do not apply; others may be added, so clients must ignore unknown ones.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error, as RFC 9457 problem details (`application/problem+json`).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "`urn:filejob:problem:<code>`."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, for clients to branch on."},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "array",
            "description": "`validation_error`, `invalid_params`: the fields that failed.",
            "items": {"$ref": "#/components/schemas/FieldError"},
        },
        "available": {**_STRINGS, "description": "`unknown_processor`: the processors."},
        "accepted": {
            **_STRINGS,
            "description": "`unsupported_media_type`: the content types that are taken.",
        },
        "content_type": {
            "type": "string",
            "description": "`unsupported_media_type`: the upload's type, judged from its bytes.",
        },
        "limit": {
            "type": "integer",
            "description": "`payload_too_large`, `quota_exceeded` (bytes), "
            "`too_many_active_jobs` (jobs): the limit reached.",
        },
        "used": {"type": "integer", "description": "`quota_exceeded`: bytes already stored."},
        "limit_per_minute": {"type": "integer", "description": "`rate_limited`: the key's."},
        "job_status": {
            "type": "string",
            "description": "`result_not_ready`, `job_failed`, `result_gone`, `job_final`: "
            "the job's status.",
        },
        "error": {"$ref": "#/components/schemas/ProblemJobError"},
        "checks": {
            "type": "object",
            "description": "`not_ready`: each readiness check and its outcome (`ok` or why not).",
            "additionalProperties": {"type": "string"},
        },
    },
    "additionalProperties": True,
}

# The components PROBLEM_SCHEMA refers to, by name, itself among them.
PROBLEM_COMPONENTS: dict[str, dict[str, Any]] = {
    "Problem": PROBLEM_SCHEMA,
    "FieldError": {
        "title": "FieldError",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                "description": "Where: the part, then the field's path.",
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"type": "string"},
            "type": {"type": "string"},
        },
    },
    "ProblemJobError": {
        "title": "ProblemJobError",
        "description": "`job_failed`: why the job failed, as in the job's own `error`.",
        "type": "object",
        "properties": {
            "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "message": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    },
}


def problems(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, each a problem+json body."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}
        for status, text in descriptions.items()
    }


# On every router: FastAPI would otherwise document its own 422 body, which we never send.
VALIDATION = problems({422: "Invalid fields"})


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:filejob:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def error_problem(exc: FilejobError, path: str) -> JSONResponse:
    """The problem a domain error answers with, for a request to `path`."""
    return problem(exc.status, exc.code, exc.title, exc.detail, path, exc.headers, **exc.extra)


async def _filejob_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FilejobError)
    return error_problem(exc, request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem(
        422,
        ValidationFailed.code,
        ValidationFailed.title,
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors),
        request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return problem(
        exc.status_code, code, str(exc.detail), str(exc.detail), request.url.path, exc.headers
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if "disk is full" in str(exc):  # SQLite's SQLITE_FULL
        return problem(
            InsufficientStorage.status,
            InsufficientStorage.code,
            InsufficientStorage.title,
            "The database has no space left.",
            request.url.path,
            {"Retry-After": "60"},
        )
    # "database is locked" (contention that outlasted busy_timeout) and a pool with no free
    # connection are temporary: tell the client when to come back instead of a 500.
    if isinstance(exc, PoolTimeout) or "locked" in str(exc) or "busy" in str(exc):
        return problem(
            503,
            "database_busy",
            "Database busy",
            "The database is busy; retry shortly.",
            request.url.path,
            {"Retry-After": "1"},
        )
    raise exc


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not the client's doing (input errors are 4xx at their boundary, see
    # `filejob.untrusted.boundary.interpreting`). Starlette still re-raises it after this
    # answer, so the server logs the traceback; the client gets problem+json without internals.
    return problem(
        500,
        "internal_error",
        "Internal error",
        "The server failed to handle this request; the failure is logged.",
        request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(FilejobError, _filejob_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
