"""How error responses are documented in the OpenAPI schema: RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from filejob.errors import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable, for clients to branch on."},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,  # per-code extras: errors, limit, available, ...
}


def problems(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, each a problem+json body."""
    return {
        status: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status, text in descriptions.items()
    }


# On every router: FastAPI would otherwise document its own 422 body, which we never send.
VALIDATION = problems({422: "Invalid fields"})
