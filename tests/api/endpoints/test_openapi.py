"""The served OpenAPI document, as code generators read it, and the docs pages that render it
with nothing loaded from elsewhere."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from filejob.errors import PROBLEM_JSON
from tests.support.jobs import submit

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def profile() -> str:
    """The document and the pages are the same on every deployment profile."""
    return "embedded"


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def schema_of(spec: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].removeprefix("#/components/schemas/")
    found: dict[str, Any] = spec["components"]["schemas"][name]
    return found


async def test_the_upload_form_is_typed_as_sent(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]
    # The form first (a generated client's primary signature), then a raw body, then an
    # import's fields as JSON.
    assert list(body["content"]) == [
        "multipart/form-data",
        "application/octet-stream",
        "application/json",
    ]
    form = schema_of(spec, body["content"]["multipart/form-data"]["schema"])
    fields = form["properties"]
    assert set(form["required"]) == {"processor"}  # and `file` or `source_url`
    # A generator makes `file` a file to upload only with `format: binary`.
    assert fields["file"]["type"] == "string" and fields["file"]["format"] == "binary"
    assert fields["processor"] | {"minLength": 1} == fields["processor"]
    # A form has no null: an optional field is left out (a generated client would send the
    # string "None").
    assert {name: field.get("type") for name, field in fields.items()} == {
        "file": "string",
        "processor": "string",
        "params": "string",
        "delete_after_download": "boolean",
        "max_attempts": "integer",
        "timeout_seconds": "number",
        "callback_url": "string",
        "sha256": "string",
        "source_url": "string",
        "reuse": "boolean",
    }
    assert fields["max_attempts"]["minimum"] == 1
    assert fields["timeout_seconds"]["exclusiveMinimum"] == 0
    assert fields["callback_url"]["maxLength"] == 2048


async def test_a_result_is_documented_as_bytes_first(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    for method in ("get", "head"):
        content = spec["paths"]["/v1/jobs/{job_id}/result"][method]["responses"]["200"]["content"]
        first, schema = next(iter(content.items()))
        assert (first, schema["schema"]) == (
            "application/octet-stream",
            {"type": "string", "format": "binary"},
        )


async def test_operation_ids_are_the_function_names(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids)), sorted(ids)
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", operation_id), operation_id
        assert "_v1_" not in operation_id and not operation_id.endswith(("_get", "_post"))
    assert {"submit_job", "get_job", "list_jobs", "delete_job", "download_result"} <= set(ids)
    assert {"head_result", "list_processors", "healthz", "readyz"} <= set(ids)


async def test_every_error_response_is_the_one_problem_schema(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    errors = 0
    for method, path, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) or status == "default":
                errors += 1
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                    method,
                    path,
                    status,
                )
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in operation["responses"], (method, path)
    assert errors > 30
    schemas = spec["components"]["schemas"]
    # FastAPI's own 422 body is never sent: no trace of it remains.
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
    problem = schemas["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(problem["properties"])
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}


def assert_is_a_problem(spec: dict[str, Any], response: httpx.Response) -> dict[str, Any]:
    """The response's body has only members the Problem schema names, of the named types."""
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    schema = spec["components"]["schemas"]["Problem"]
    assert set(schema["required"]) <= set(body), body
    python_types = {"string": str, "integer": int, "array": list, "object": dict}
    for name, value in body.items():
        assert name in schema["properties"], f"{name} is not in the Problem schema"
        declared = schema["properties"][name]
        if "type" in declared:
            assert isinstance(value, python_types[declared["type"]]), (name, value)
    return body


async def test_problems_sent_are_those_documented(client: httpx.AsyncClient) -> None:
    spec = await document(client)
    missing = await client.get("/v1/jobs/no-such-job")
    assert assert_is_a_problem(spec, missing)["code"] == "job_not_found"
    invalid = await client.get("/v1/jobs", params={"limit": "many"})
    body = assert_is_a_problem(spec, invalid)
    assert body["code"] == "validation_error" and body["errors"][0]["loc"] == ["query", "limit"]
    unknown = await submit(client, b"data", "no-such-processor")
    assert "checksum" in assert_is_a_problem(spec, unknown)["available"]
    bad_params = await submit(client, b"data", "compress", params={"level": "high"})
    assert assert_is_a_problem(spec, bad_params)["errors"]


def references(page: str) -> list[str]:
    """Every URL the page loads or points at: src, href, and the document's `url`."""
    found = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", page)
    return found + re.findall(r"""\burl: ?["']([^"']+)["']""", page)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_load_nothing_from_elsewhere(
    client: httpx.AsyncClient, path: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    found = references(page.text)
    assert "/openapi.json" in found and len(found) >= 3, found
    for reference in found:
        url = urlsplit(urljoin(str(page.url), reference))
        assert url.netloc == "filejob.test", f"{path} loads {reference} from elsewhere"
        asset = await client.get(url.path)
        assert asset.status_code == 200, reference
        assert asset.content, reference
    # Browsers enforce it too: scripts, styles, images and requests only from this server.
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy


async def test_the_docs_assets_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert b"SwaggerUIBundle" in script.content
    style = await client.get("/docs/assets/swagger-ui.css")
    assert style.headers["content-type"].startswith("text/css")
    assert (await client.get("/docs/assets/../app.py")).status_code == 404
