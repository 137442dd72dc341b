"""The close-deferring wrapper: a job that runs after its request ended still has its input."""

from __future__ import annotations

import io
import os
from typing import Annotated, Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, Form, UploadFile
from starlette.datastructures import UploadFile as StarletteUpload

from filejob.api.uploads.owned import OwnedUpload
from tests.support.jobs import submit, wait_for_status


def deferring_app(pending: list[StarletteUpload]) -> FastAPI:
    """An app whose 'executor' only queues: the work happens after the request is over."""
    app = FastAPI()

    @app.post("/upload")
    async def upload(
        file: UploadFile, background: BackgroundTasks, wrap: Annotated[bool, Form()] = False
    ) -> dict[str, str]:
        handed_over = OwnedUpload.take(file) if wrap else file
        background.add_task(pending.append, handed_over)
        return {"queued": "yes"}

    return app


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024])  # in memory, and rolled to disk
async def test_bare_uploadfile_is_closed_before_deferred_work(size: int) -> None:
    pending: list[StarletteUpload] = []
    transport = httpx.ASGITransport(app=deferring_app(pending))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/upload", files={"file": ("a.bin", os.urandom(size))})
    assert response.status_code == 200
    (upload,) = pending
    with pytest.raises(ValueError, match=r"(I/O operation on|read of) closed file"):
        await upload.read()


@pytest.mark.parametrize("size", [1000, 3 * 1024 * 1024])
async def test_owned_upload_survives_the_request_until_released(size: int) -> None:
    pending: list[StarletteUpload] = []
    content = os.urandom(size)
    transport = httpx.ASGITransport(app=deferring_app(pending))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(
            "/upload", files={"file": ("a.bin", content)}, data={"wrap": "true"}
        )
    assert response.status_code == 200
    (upload,) = pending
    assert isinstance(upload, OwnedUpload)
    await upload.seek(0)
    assert await upload.read() == content  # the request is long over
    await upload.close()  # what the framework calls: must not close
    assert not upload.file.closed
    await upload.release()
    assert upload.released and upload.file.closed
    await upload.release()  # idempotent


async def test_take_is_idempotent() -> None:
    original = StarletteUpload(io.BytesIO(b"abc"), filename="a")
    owned = OwnedUpload.take(original)
    assert OwnedUpload.take(owned) is owned
    await original.close()  # the request's handle no longer closes the shared file
    assert await owned.read() == b"abc"


@pytest.mark.parametrize(
    ("params", "cancel", "final"),
    [
        ({"steps": 2, "step_seconds": 0}, False, "succeeded"),
        ({"steps": 2, "step_seconds": 0, "fail": True}, False, "failed"),
        ({"steps": 10_000, "step_seconds": 0.01}, True, "cancelled"),
    ],
)
async def test_job_releases_its_upload_on_every_outcome(
    app: Any,
    client: httpx.AsyncClient,
    run_until_idle: Any,
    params: dict[str, Any],
    cancel: bool,
    final: str,
) -> None:
    executor = app.state.services.executor
    handed: list[OwnedUpload] = []
    real_schedule = executor.schedule

    async def spy(job_id: str, upload: OwnedUpload | None = None) -> None:
        assert upload is not None
        handed.append(upload)
        await real_schedule(job_id, upload)

    executor.schedule = spy
    job = (await submit(client, os.urandom(2 * 1024 * 1024), "slow", params=params)).json()
    if cancel:
        await wait_for_status(client, job["id"], "running")
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    await run_until_idle()
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == final
    (upload,) = handed
    assert upload.released and upload.file.closed
