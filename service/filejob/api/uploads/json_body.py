"""JSON bodies: `POST /v1/jobs` with `Content-Type: application/json` and the job's fields as
one object, the way to ask for an import (`source_url`) without building a form.

The object is checked against `JobFields` (types only, unknown members refused) and handed to
the endpoint as the form it would have parsed, fields only and no file, so from there on it is
a form: the same validation, admission and answers. A field's error names `["body", field]`.
A body that is not JSON is `400 malformed_request`. A JSON body that names no `source_url`
cannot be an upload either (it carries no file): `415`, as before imports, naming what is
taken. (A JSON body with `?processor=` in the query is a raw upload of a JSON file: raw.py.)
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect

from filejob.api.uploads.body import (
    FORM_OVERHEAD_BYTES,
    UploadPolicy,
    declared_length,
    limited,
    read_error,
)
from filejob.errors import MalformedRequest, UnsupportedMediaType
from filejob.untrusted.boundary import interpreting

JSON_TYPES = ("application/json",)
MAX_JSON_BYTES = FORM_OVERHEAD_BYTES  # what a form's fields may take


class JobFields(BaseModel):
    """The JSON body of `POST /v1/jobs`: an import's fields (see the form's for each)."""

    model_config = ConfigDict(extra="forbid", title="JobFields")

    source_url: str = Field(description="The http(s) URL to fetch the file from.")
    processor: str
    params: dict[str, Any] | str | None = Field(
        None, description="Processor params: a JSON object (or its text)."
    )
    delete_after_download: bool | None = None
    max_attempts: int | None = None
    timeout_seconds: float | None = None
    callback_url: str | None = None
    sha256: str | None = None
    reuse: bool | None = None


# The body's schema in the OpenAPI document (a flat object: no references to resolve).
JSON_BODY = JobFields.model_json_schema()


def is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media in JSON_TYPES


async def parse_json_body(request: Request, policy: UploadPolicy) -> FormData:
    """The body's fields as the form `submit_job` takes (no file part)."""
    declared_length(request, MAX_JSON_BYTES, MAX_JSON_BYTES)
    chunks = []
    try:
        async for chunk in limited(
            request.stream(), MAX_JSON_BYTES, policy.body_timeout, policy.body_deadline
        ):
            chunks.append(chunk)
    except (ClientDisconnect, OSError) as exc:
        mapped = read_error(exc)
        if mapped is exc:
            raise
        raise mapped from exc
    with interpreting("The JSON body", MalformedRequest):
        try:
            document = json.loads(b"".join(chunks))
        except (ValueError, RecursionError) as exc:
            raise MalformedRequest(f"The body is not JSON: {exc}.") from exc
    if not isinstance(document, dict) or "source_url" not in document:
        raise UnsupportedMediaType(
            "A JSON body asks for an import and names its `source_url`; a file is sent as a "
            "multipart/form-data form, or as the body itself with the fields in the query "
            "string (?processor=...).",
            accepted=["multipart/form-data"],
        )
    try:
        fields = JobFields.model_validate(document)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    return FormData([(name, _as_field(value)) for name, value in _sent(fields)])


def _sent(fields: JobFields) -> list[tuple[str, Any]]:
    return [(name, value) for name, value in fields.model_dump().items() if value is not None]


def _as_field(value: Any) -> str:
    """A JSON value as a form field's text (the form's validation reads it back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)
