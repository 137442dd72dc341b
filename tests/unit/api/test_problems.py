"""A bug is still a problem+json answer: a 500 with code `internal_error` and no internals,
while the traceback goes to the server's log."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from filejob.api.problems import install_error_handlers


async def test_an_unexpected_exception_is_a_problem_json_500_without_internals() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/filejob/storage")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "internal_error"
    assert "secret" not in response.text and "/srv" not in response.text
