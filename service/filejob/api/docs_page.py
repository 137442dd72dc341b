"""The interactive API docs, `/docs` (Swagger UI) and `/redoc` (ReDoc), served whole by this
server: their scripts and styles come from the `fastapi-offline` package (Swagger UI 5,
ReDoc 2), mounted at `/docs/assets`, so the pages work on a network without internet, and
their Content-Security-Policy lets them load nothing from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"

# The page loads only this server's files; its one inline script is allowed by its hash.
# Inline styles: Swagger UI and ReDoc set them. Blob workers: ReDoc's search index.
_POLICY = (
    "default-src 'self'; script-src 'self' {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

# `validatorUrl: null`: no badge fetched from swagger.io, whose validator would be sent the
# document.
_SWAGGER_UI = {"validatorUrl": None}

router = APIRouter(include_in_schema=False)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    hashes = (
        base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in _INLINE_SCRIPT.findall(bytes(page.body).decode())
    )
    page.headers["Content-Security-Policy"] = _POLICY.format(
        scripts=" ".join(f"'sha256-{digest}'" for digest in hashes)
    )
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


def _root(request: Request) -> str:
    """The path the app is mounted at behind a proxy (`--root-path`), or ''."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    return _with_policy(
        get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=_SWAGGER_UI,
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root, app = _root(request), request.app
    return _with_policy(
        get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
    )


def mount(app: FastAPI) -> None:
    """Serve the docs pages and their assets; the app is made with `docs_url=None` and
    `redoc_url=None`, so that FastAPI's own pages, which load them from a CDN, are not."""
    app.include_router(router)
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
