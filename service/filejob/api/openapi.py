"""The OpenAPI document as clients and code generators need it: short operation ids, and every
error answer documented as the one `Problem` schema the error handlers (api/problems.py) send.

FastAPI builds the document from the routes; `install` finishes it once, on first use, so
routers included after it are covered too."""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from filejob.api.problems import PROBLEM_COMPONENTS, PROBLEM_REF
from filejob.errors import PROBLEM_JSON

# FastAPI's own 422 body: never sent, `install_error_handlers` answers validation errors as
# problem+json (`validation_error`).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_SCHEMAS = "#/components/schemas/"
_FORM = "multipart/form-data"
_BINARY = "application/octet-stream"


def operation_id(route: APIRoute) -> str:
    """The route function's name (`submit_job`, not FastAPI's `submit_job_v1_jobs_post`): the
    method name in generated clients, so it is part of the API and must stay stable."""
    return route.name


def _is_error(status: str) -> bool:
    return status[:1] in ("4", "5") or status == "default"


def _form_fields_not_null(form: dict[str, Any]) -> None:
    """A multipart field has no null: an optional field is left out. FastAPI writes
    `str | None` as `anyOf: [string, null]`, which generated clients would send as "None"."""
    for field in form.get("properties", {}).values():
        kinds = [kind for kind in field.get("anyOf", ()) if kind != {"type": "null"}]
        if len(kinds) == 1 and len(field["anyOf"]) == 2:
            del field["anyOf"]
            field.update(kinds[0])


def _binary_first(response: dict[str, Any]) -> None:
    """A response that can be any file (a job's result) is documented as bytes, first:
    generators take the first media type they know, and FastAPI puts its default JSON first,
    which would have a generated client parse a PNG as JSON. The others stay listed."""
    content = response.get("content", {})
    if _BINARY in content:
        content[_BINARY] = content[_BINARY] or {}
        content[_BINARY].setdefault("schema", {"type": "string", "format": "binary"})
        response["content"] = {_BINARY: content[_BINARY]} | content


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """`document` (changed in place) with `Problem` as the body of every error response, and
    multipart forms as they are sent."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if _is_error(str(status)):
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
                else:
                    _binary_first(response)
            form = operation.get("requestBody", {}).get("content", {}).get(_FORM, {})
            ref = form.get("schema", {}).get("$ref", "")
            if ref.startswith(_SCHEMAS):
                _form_fields_not_null(schemas[ref.removeprefix(_SCHEMAS)])
    schemas.update(copy.deepcopy(PROBLEM_COMPONENTS))  # each document its own
    for name in _FASTAPI_VALIDATION:  # in order: the first refers to the second
        if f'"{_SCHEMAS}{name}"' not in json.dumps(document):
            schemas.pop(name, None)
    return document


def install(app: FastAPI) -> None:
    """Serve `finish`'s document at the app's `openapi_url`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(build())
        return app.openapi_schema

    # FastAPI's documented way to change the document ("Extending OpenAPI").
    app.openapi = openapi  # type: ignore[method-assign]
