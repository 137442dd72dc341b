"""Domain errors as data: each carries a stable `code` and an HTTP status.

One set of handlers (installed by `create_app`) renders every error as RFC 9457
`application/problem+json`, so clients can branch on `code` instead of parsing prose.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"


class FilejobError(Exception):
    """Base of every error a client can see. Subclasses set `code`, `status` and `title`."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra


class MalformedRequest(FilejobError):
    code, status, title = "malformed_request", 400, "Malformed request"


class MalformedMultipart(FilejobError):
    code, status, title = "malformed_multipart", 400, "Malformed multipart body"


class ValidationFailed(FilejobError):
    code, status, title = "validation_error", 422, "Request validation failed"


class UnknownProcessor(FilejobError):
    code, status, title = "unknown_processor", 422, "Unknown processor"


class InvalidParams(FilejobError):
    code, status, title = "invalid_params", 422, "Invalid processor params"


class EmptyFile(FilejobError):
    code, status, title = "empty_file", 422, "The uploaded file is empty"


class PayloadTooLarge(FilejobError):
    code, status, title = "payload_too_large", 413, "Upload too large"


class UnsupportedMediaType(FilejobError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class JobNotFound(FilejobError):
    code, status, title = "job_not_found", 404, "Job not found"


class ResultNotReady(FilejobError):
    code, status, title = "result_not_ready", 409, "Result not ready"


class JobFailed(FilejobError):
    code, status, title = "job_failed", 409, "Job failed; it has no result"


class ResultGone(FilejobError):
    code, status, title = "result_gone", 410, "Result no longer available"


class RangeNotSatisfiable(FilejobError):
    code, status, title = "range_not_satisfiable", 416, "Range not satisfiable"


class InvalidCursor(FilejobError):
    code, status, title = "invalid_cursor", 422, "Invalid pagination cursor"


class InsufficientStorage(FilejobError):
    code, status, title = "insufficient_storage", 507, "Not enough storage space"


class ShuttingDown(FilejobError):
    code, status, title = "shutting_down", 503, "The server is shutting down"


class ServiceUnavailable(FilejobError):
    code, status, title = "service_unavailable", 503, "Service temporarily unavailable"


# -- identity, quotas and limits -----------------------------------------------------------

_BEARER = 'Bearer realm="filejob"'


class Unauthorized(FilejobError):
    code, status, title = "unauthorized", 401, "An API key is required"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": _BEARER}, **extra)


class InvalidApiKey(FilejobError):
    code, status, title = "invalid_api_key", 401, "Invalid API key"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": f'{_BEARER}, error="invalid_token"'}, **extra
        )


class InvalidSignature(FilejobError):
    code, status, title = "invalid_signature", 403, "Invalid link signature"


class LinkExpired(FilejobError):
    code, status, title = "link_expired", 403, "Link expired"


class RateLimited(FilejobError):
    code, status, title = "rate_limited", 429, "Too many requests"


class TooManyActiveJobs(FilejobError):
    code, status, title = "too_many_active_jobs", 429, "Too many active jobs"


class QuotaExceeded(FilejobError):
    code, status, title = "quota_exceeded", 413, "Storage quota exceeded"


class RequestTimeout(FilejobError):
    code, status, title = "request_timeout", 408, "The request body arrived too slowly"


class InvalidCallbackUrl(FilejobError):
    code, status, title = "invalid_callback_url", 422, "Invalid callback URL"


class CallbackForbidden(FilejobError):
    code, status, title = "callback_url_forbidden", 422, "Callback URL not allowed"


class WebhooksNotConfigured(FilejobError):
    code, status, title = "webhooks_not_configured", 422, "Webhooks need a signing secret"


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
    headers: dict[str, str] | None = None,
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


async def _filejob_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FilejobError)
    return problem(
        exc.status, exc.code, exc.title, exc.detail, request.url.path, exc.headers, **exc.extra
    )


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
    # `filejob.untrusted.interpreting`). Starlette still re-raises it after this answer, so the
    # server logs the traceback; the client gets problem+json without internals.
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
