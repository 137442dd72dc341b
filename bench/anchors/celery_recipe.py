"""FastAPI + Celery (Redis broker and result backend) doing the work of filejob's `checksum`.

API: `uvicorn celery_recipe:app`; worker: `celery -A celery_recipe worker --pool=prefork
--concurrency=2`, both with this folder on PYTHONPATH. Env: ANCHOR_DATA (a folder),
ANCHOR_REDIS (e.g. redis://127.0.0.1:6379/9). Self-contained on purpose: it is the recipe a
user would write, so the shared steps are repeated in arq_recipe.py rather than imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Protocol

from celery import Celery  # type: ignore[import-untyped]  # no stubs or py.typed
from celery.result import AsyncResult  # type: ignore[import-untyped]
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse

DATA = Path(os.environ["ANCHOR_DATA"])
INPUTS, RESULTS = DATA / "inputs", DATA / "results"
REDIS = os.environ["ANCHOR_REDIS"]
STATES = {"PENDING": "queued", "RECEIVED": "queued", "STARTED": "running", "RETRY": "queued"}
STATES |= {"SUCCESS": "succeeded", "FAILURE": "failed", "REVOKED": "cancelled"}

celery = Celery("celery_recipe", broker=REDIS, backend=REDIS)
# A "running" state, as filejob reports one.
celery.conf.update(task_track_started=True, broker_connection_retry_on_startup=True)
app = FastAPI()
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


@celery.task(name="checksum")
def checksum(job_id: str, filename: str) -> dict[str, Any]:
    body = json.dumps(digests(INPUTS / job_id), indent=2).encode() + b"\n"
    write_durably(RESULTS / job_id, body)
    return {
        "filename": f"{filename}.checksum.json",
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/jobs", status_code=202)
def submit(file: UploadFile = File(...), processor: str = Form(...)) -> JSONResponse:
    if processor != "checksum":
        raise HTTPException(422, "unknown processor")
    job_id = secrets.token_urlsafe(16)
    write_durably(INPUTS / job_id, file.file)
    checksum.apply_async(args=[job_id, file.filename or "input"], task_id=job_id)
    body = {"id": job_id, "status": "queued", "processor": processor}
    return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


@app.get("/v1/jobs/{job_id}")
def status(job_id: str) -> dict[str, Any]:
    result = AsyncResult(job_id, app=celery)
    state = STATES.get(result.state, "queued")
    return {
        "id": job_id,
        "status": state,
        "result": result.result if state == "succeeded" else None,
    }


@app.get("/v1/jobs/{job_id}/result")
def download(job_id: str) -> FileResponse:
    result = AsyncResult(job_id, app=celery)
    if result.state != "SUCCESS":
        raise HTTPException(409, "result not ready")
    return FileResponse(
        RESULTS / job_id, media_type="application/json", filename=result.result["filename"]
    )
