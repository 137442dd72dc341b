"""Logging for `filejob serve` and `filejob worker`: one line per record, JSON when stderr is
not a terminal (for log shippers), text when it is. Every line written while a request is
handled carries its `request_id`, and every line about a job its `job_id` (context variables,
so nothing has to pass them around; the runner sets the job's, see `jobs.log_context`).
Signed-link signatures are masked: they are credentials.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filejob.jobs.log_context import job_id

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_SECRETS = re.compile(r"((?:sig|api_key|token)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
_GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def redact(text: str) -> str:
    # Neither pattern can match without these (most lines, an access line without a query).
    if "=" not in text and "bearer" not in text.lower():
        return text
    return _BEARER.sub(r"\1[redacted]", _SECRETS.sub(r"\1[redacted]", text))


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.job_id = job_id.get()
        return True


# json.dumps(..., ensure_ascii=False) builds an encoder per call; this one is built once.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "job_id"):
            if getattr(record, key, None):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return _encode(line)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        tags = " ".join(
            f"{key}={getattr(record, key)}"
            for key in ("request_id", "job_id")
            if getattr(record, key, None)
        )
        return redact(super().format(record) + (f" [{tags}]" if tags else ""))


def configure(level: str, form: Literal["auto", "json", "text"] = "auto") -> None:
    """Route every logger (uvicorn's and procrastinate's included) to one stderr handler."""
    use_json = form == "json" or (form == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Neither form shows where a line was logged from, nor the thread or process: skip
    # collecting them for every record (the Logging HOWTO's "Optimization"; the caller's frame
    # lookup alone was a tenth of an access line's cost).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class RequestIds:
    """ASGI middleware: a request id per request, from a sane `X-Request-ID` or new, set for
    the request's log lines and returned in the response's `X-Request-ID`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _GIVEN_ID.match(given) else secrets.token_hex(8)
        # Not reset afterwards: the server logs the request's access line after the app
        # returns, in the same task (each request runs in a task of its own).
        request_id.set(rid)

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, tagged)
