"""Domain errors as data: each carries a stable `code` and an HTTP status.

No web framework here: one set of handlers in the API layer (`filejob.api.problems`) renders
every error as RFC 9457 `application/problem+json`, so clients can branch on `code` instead of
parsing prose.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


class JobFinal(FilejobError):
    """Cancelling a job that is final already: nothing to cancel."""

    code, status, title = "job_final", 409, "The job is final"


class InvalidEventCursor(InvalidCursor):
    """A `Last-Event-ID` or `since` that is not a cursor of `GET /v1/events`: 400, since it is
    a header (or a query parameter) the server gave out, not a field of a form."""

    status, title = 400, "Invalid event cursor"


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


# -- integrity and exactly-once submission ----------------------------------------------------


class DigestMismatch(FilejobError):
    """The upload's sha-256 is not the one the client sent (`Repr-Digest`, `sha256`): the
    bytes changed on the way, and none of them are kept."""

    code, status, title = "digest_mismatch", 422, "The upload does not match its digest"


class InvalidIdempotencyKey(FilejobError):
    code, status, title = "invalid_idempotency_key", 400, "Invalid Idempotency-Key"


class IdempotencyKeyReused(FilejobError):
    """The key was used before with a different request (other fields or another file)."""

    code, status, title = "idempotency_key_reused", 422, "Idempotency-Key used for another request"


class IdempotencyKeyInFlight(FilejobError):
    """A request with the same key is still being handled: retry after it has been answered."""

    code, status, title = "idempotency_key_in_flight", 409, "A request with this key is in flight"
