"""FastAPI + arq (Redis) doing the work of filejob's `checksum` and of its `compress` with gzip.

API: `uvicorn arq_recipe:app`; worker: `arq arq_recipe.WorkerSettings` (one process), both with
this folder on PYTHONPATH. Env: ANCHOR_DATA (a folder), ANCHOR_REDIS (e.g.
redis://127.0.0.1:6379/10). Self-contained on purpose, like celery_recipe.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job, JobStatus
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

DATA = Path(os.environ["ANCHOR_DATA"])
INPUTS, RESULTS = DATA / "inputs", DATA / "results"
REDIS = RedisSettings.from_dsn(os.environ["ANCHOR_REDIS"])
STATES = {
    JobStatus.deferred: "queued",
    JobStatus.queued: "queued",
    JobStatus.in_progress: "running",
    JobStatus.complete: "succeeded",
}
for folder in (INPUTS, RESULTS):
    folder.mkdir(parents=True, exist_ok=True)


class _Digest(Protocol):
    """What the loop needs of a hashlib object (BLAKE2b's class is not hashlib's HASH)."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def write_durably(dest: Path, source: IO[bytes] | bytes) -> None:
    """Write, fsync, rename into place and fsync the folder: filejob's FILEJOB_FSYNC=true."""
    tmp = dest.with_name(dest.name + ".part")
    with tmp.open("wb") as f:
        if isinstance(source, bytes):
            f.write(source)
        else:
            shutil.copyfileobj(source, f, 1024 * 1024)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(dest)
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def digests(path: Path) -> dict[str, Any]:
    """What filejob's checksum writes: size, SHA-256, SHA-1, MD5, BLAKE2b, in one pass."""
    hashes: dict[str, _Digest] = {
        "sha256": hashlib.sha256(),
        "sha1": hashlib.sha1(usedforsecurity=False),
        "md5": hashlib.md5(usedforsecurity=False),
        "blake2b": hashlib.blake2b(),
    }
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            size += len(chunk)
            for h in hashes.values():
                h.update(chunk)
    return {"size": size, **{name: h.hexdigest() for name, h in hashes.items()}}


class _HashingFile:
    """The output file, hashed as it is written (filejob reports each result's sha256)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.sha256, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes, /) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def gzip_durably(src: Path, dest: Path, level: int) -> tuple[int, str]:
    """gzip `src` into `dest` as filejob's compress does (mtime 0, no name in the header),
    fsynced and renamed into place like write_durably; (size, sha256) of the result."""
    tmp = dest.with_name(dest.name + ".part")
    with src.open("rb") as f, tmp.open("wb") as out:
        hashed = _HashingFile(out)
        with gzip.GzipFile(
            filename="", fileobj=hashed, mode="wb", compresslevel=level, mtime=0
        ) as gz:
            shutil.copyfileobj(f, gz, 1024 * 1024)
        out.flush()
        os.fsync(out.fileno())
    tmp.rename(dest)
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return hashed.size, hashed.sha256.hexdigest()


def gzip_level(processor: str, params: str | None) -> int | None:
    """None for checksum; the gzip level for compress (filejob's default 6); 422 otherwise."""
    if processor == "checksum" and not params:
        return None
    if processor != "compress":
        raise HTTPException(422, "unknown processor")
    given = json.loads(params or "{}")
    if given.get("format") != "gzip" or set(given) - {"format", "level"}:
        raise HTTPException(422, "this recipe compresses with gzip only")
    level = int(given.get("level", 6))
    if not 1 <= level <= 9:
        raise HTTPException(422, "level for gzip must be between 1 and 9")
    return level


def _checksum(job_id: str, filename: str) -> dict[str, Any]:
    body = json.dumps(digests(INPUTS / job_id), indent=2).encode() + b"\n"
    write_durably(RESULTS / job_id, body)
    return {
        "filename": f"{filename}.checksum.json",
        "content_type": "application/json",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def _compress(job_id: str, filename: str, level: int) -> dict[str, Any]:
    size, sha256 = gzip_durably(INPUTS / job_id, RESULTS / job_id, level)
    return {
        "filename": f"{filename}.gz",
        "content_type": "application/gzip",
        "size": size,
        "sha256": sha256,
    }


async def checksum(ctx: dict[str, Any], job_id: str, filename: str) -> dict[str, Any]:
    # Blocking file work goes to a thread, as it would in any asyncio worker.
    return await run_in_threadpool(_checksum, job_id, filename)


async def compress(ctx: dict[str, Any], job_id: str, filename: str, level: int) -> dict[str, Any]:
    return await run_in_threadpool(_compress, job_id, filename, level)


class WorkerSettings:
    functions = [checksum, compress]
    redis_settings = REDIS
    keep_result = 3600


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = await create_pool(REDIS)
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


def _redis(request: Request) -> ArqRedis:
    redis: ArqRedis = request.app.state.redis
    return redis


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=202)
async def submit(
    request: Request,
    file: UploadFile = File(...),
    processor: str = Form(...),
    params: str | None = Form(None),
) -> JSONResponse:
    level = gzip_level(processor, params)
    job_id = secrets.token_urlsafe(16)
    await run_in_threadpool(write_durably, INPUTS / job_id, file.file)
    filename = file.filename or "input"
    if level is None:
        await _redis(request).enqueue_job("checksum", job_id, filename, _job_id=job_id)
    else:
        await _redis(request).enqueue_job("compress", job_id, filename, level, _job_id=job_id)
    body = {"id": job_id, "status": "queued", "processor": processor}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


async def _state(request: Request, job_id: str) -> tuple[str, dict[str, Any] | None]:
    job = Job(job_id, _redis(request))
    found = await job.status()
    if found == JobStatus.not_found:
        raise HTTPException(404, "job not found")
    if found != JobStatus.complete:
        return STATES[found], None
    info = await job.result_info()
    if info is None or not info.success:
        return "failed", None
    result: dict[str, Any] = info.result
    return "succeeded", result


@app.get("/v1/jobs/{job_id}")
async def status(request: Request, job_id: str) -> dict[str, Any]:
    state, result = await _state(request, job_id)
    return {"id": job_id, "status": state, "result": result}


@app.get("/v1/jobs/{job_id}/result")
async def download(request: Request, job_id: str) -> FileResponse:
    state, result = await _state(request, job_id)
    if result is None:
        raise HTTPException(409, f"result not ready: {state}")
    return FileResponse(
        RESULTS / job_id, media_type=result["content_type"], filename=result["filename"]
    )
