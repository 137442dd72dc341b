"""What the client raises: the server's refusals (`ApiError`, from its problem+json) and the
caller's own stops (`Aborted`)."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """The server refused: `status`, its problem `code` and `detail`, and the whole problem
    document (`problem`: extension members such as `job_status` or `available`)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        problem: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.problem = problem or {}
        self.retry_after = retry_after  # seconds, from the answer's Retry-After

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})"


class Aborted(Exception):
    """A transfer stopped because the caller asked (Ctrl+C). An upload stopped this way never
    finished its body, so the server created no job; a download keeps its part file."""


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        problem = response.json()
        code, detail = str(problem.get("code", "error")), str(problem.get("detail", ""))
    except ValueError:
        problem, code = None, "http_error"
        detail = response.text[:200] or response.reason_phrase
    if not isinstance(problem, dict):
        problem = None
    raise ApiError(
        response.status_code,
        code,
        detail or response.reason_phrase,
        problem,
        _seconds(response.headers.get("retry-after")),
    )


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (its HTTP-date form is not used by filejob)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
