"""The bare baseline for `bench/run.py`: the least a Starlette app on uvicorn can do.

Served like `filejob serve` serves filejob (uvicorn, one process, httptools, the same event loop
choice and log level), so that the difference between the two is filejob's own work:

- `POST /upload`: writes the raw request body (`request.stream()` chunks) to a new file in
  `--upload-dir` (put it on the same filesystem as filejob's data dir), returns 200 with the
  byte count. The writes happen directly in the event loop, as a minimal handler would.
  `POST /upload?fsync=1` also fsyncs the file before answering, like filejob's default
  FILEJOB_FSYNC=true does with a stored input.
- `GET /file`: `--serve-file` through Starlette's `FileResponse`.
- `GET /ping`: a small JSON document.

Run: `python bench/bare_app.py --port 8001 --upload-dir /tmp/x --serve-file big.bin`.
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route


def create_app(upload_dir: Path, serve_file: Path) -> Starlette:
    counter = itertools.count()

    async def upload(request: Request) -> Response:
        target = upload_dir / f"upload-{os.getpid()}-{next(counter)}.bin"
        size = 0
        with target.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
                size += len(chunk)
            if request.query_params.get("fsync") == "1":
                out.flush()
                os.fsync(out.fileno())
        return JSONResponse({"path": str(target), "size": size})

    async def file(request: Request) -> Response:
        return FileResponse(serve_file, media_type="application/octet-stream")

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/upload", upload, methods=["POST"]),
            Route("/file", file, methods=["GET"]),
            Route("/ping", ping, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upload-dir", type=Path, required=True)
    parser.add_argument("--serve-file", type=Path, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    args.upload_dir.mkdir(parents=True, exist_ok=True)
    # Mirrors service/filejob/cli.py's uvicorn.run(); http="httptools" is what "auto" picks there.
    uvicorn.run(
        create_app(args.upload_dir, args.serve_file),
        host=args.host,
        port=args.port,
        http="httptools",
        log_level=args.log_level,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
