"""The JSON the API speaks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.jobs.model import Job
from service.jobs.states import JobStatus


class ErrorOut(BaseModel):
    code: str
    message: str


class InputOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str


class ResultOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str
    url: str = Field(description="Where to download it (relative to the server).")


class JobOut(BaseModel):
    id: str
    status: JobStatus
    processor: str
    params: dict[str, Any]
    progress: float = Field(ge=0, le=1)
    attempts: int
    max_attempts: int
    timeout_seconds: float = Field(description="Seconds one attempt may take.")
    next_attempt_at: datetime | None = Field(
        description="When a job waiting for a retry runs again."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    delete_after_download: bool
    error: ErrorOut | None
    input: InputOut
    result: ResultOut | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        result = None
        if job.status is JobStatus.SUCCEEDED and job.result_key:
            result = ResultOut(
                filename=job.result_filename or "result",
                content_type=job.result_content_type or "application/octet-stream",
                size=job.result_size or 0,
                sha256=job.result_sha256 or "",
                url=f"/v1/jobs/{job.id}/result",
            )
        error = None
        if job.error_code:
            error = ErrorOut(code=job.error_code, message=job.error_message or "")
        return cls(
            id=job.id,
            status=job.status,
            processor=job.processor,
            params=job.params,
            progress=round(job.progress, 4),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            timeout_seconds=job.timeout_seconds,
            next_attempt_at=job.next_attempt_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            delete_after_download=job.delete_after_download,
            error=error,
            input=InputOut(
                filename=job.input_filename,
                content_type=job.input_content_type,
                size=job.input_size,
                sha256=job.input_sha256,
            ),
            result=result,
        )


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class ProcessorOut(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]
    content_types: list[str]


class ProcessorList(BaseModel):
    items: list[ProcessorOut]
