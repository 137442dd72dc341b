"""The JSON the API speaks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_core import to_json

from filejob.auth.links import LinkSigner, result_path
from filejob.jobs.model import Job
from filejob.jobs.repository import POLL_COLUMNS
from filejob.jobs.states import CallbackState, JobStatus


class ErrorOut(BaseModel):
    code: str
    message: str


class InputOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str


class SourceOut(BaseModel):
    url: str = Field(description="The `source_url` the job was submitted with.")
    fetched_bytes: int = Field(
        description="Bytes of the source fetched so far (by the latest attempt's fetch); the "
        "input's size once it is fetched."
    )
    size: int | None = Field(
        description="The source's length as its origin announced it; null where it did not "
        "(or the fetch has not begun)."
    )


class ResultOut(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str
    url: str = Field(
        description="Where to download it, relative to the server: a signed link that works "
        "without an API key until `url_expires_at`."
    )
    url_expires_at: datetime | None


class CallbackOut(BaseModel):
    url: str
    state: CallbackState | None = Field(
        description="None until the job is final; then pending, delivered or failed."
    )
    attempts: int
    last_result: str | None = Field(
        description="The last attempt's HTTP status, or why it failed (timeout, refused...)."
    )
    delivered_at: datetime | None


class ResultLinkOut(BaseModel):
    url: str = Field(description="A signed link to the result, relative to the server.")
    expires_at: datetime


class JobOut(BaseModel):
    id: str
    status: JobStatus
    processor: str
    params: dict[str, Any]
    progress: float = Field(ge=0, le=1)
    phase: Literal["fetching", "processing"] | None = Field(
        description="While the job runs: `fetching` its input from `source.url` (an import's "
        "first phase; `source.fetched_bytes` counts it), then `processing` (`progress` counts "
        "it). Null while it is not running."
    )
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
    input: InputOut = Field(
        description="The file processed. An import's, until fetched: the name its URL "
        "suggests, no type known, size 0, and the sha256 sent with it (or empty)."
    )
    source: SourceOut | None = Field(
        description="For a job imported from a URL (`source_url`): where from, and how far "
        "the fetch has come; null for an uploaded file."
    )
    result: ResultOut | None
    callback: CallbackOut | None

    @classmethod
    def of(cls, job: Job, links: LinkSigner | None = None) -> JobOut:
        """The job as the API shows it (the document `job_json` writes, validated)."""
        return cls.model_validate(job_document(_poll_columns(job), links))


def _poll_columns(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in POLL_COLUMNS}


def job_json(job: Mapping[str, Any], links: LinkSigner | None = None) -> bytes:
    """`JobOut.of(job, links).model_dump_json()`, byte for byte, without building the models:
    the poll's serialisation. `job`: `repository.POLL_COLUMNS` by name."""
    return to_json(job_document(job, links), inf_nan_mode="null")  # pydantic's default


def job_document(job: Mapping[str, Any], links: LinkSigner | None = None) -> dict[str, Any]:
    """JobOut's fields, in its order, from `repository.POLL_COLUMNS` by name: the one place a
    job's columns become its API document (`JobOut.of` validates it, `job_json` writes it)."""
    result = None
    if job["status"] is JobStatus.SUCCEEDED and job["result_key"]:
        url, expires_at = result_path(job["id"]), None
        if links is not None:
            link = links.result_link(job["id"])
            url, expires_at = link.url, datetime.fromtimestamp(link.expires, UTC)
        result = {
            "filename": job["result_filename"] or "result",
            "content_type": job["result_content_type"] or "application/octet-stream",
            "size": job["result_size"] or 0,
            "sha256": job["result_sha256"] or "",
            "url": url,
            "url_expires_at": expires_at,
        }
    callback = None
    if job["callback_url"]:
        state = job["callback_state"]
        callback = {
            "url": job["callback_url"],
            "state": state.value if state is not None else None,
            "attempts": job["callback_attempts"] or 0,
            "last_result": job["callback_last_result"],
            "delivered_at": job["callback_delivered_at"],
        }
    error = None
    if job["error_code"]:
        error = {"code": job["error_code"], "message": job["error_message"] or ""}
    phase, source = None, None
    if job["source_url"]:
        source = {
            "url": job["source_url"],
            "fetched_bytes": job["fetched_bytes"] or 0,
            "size": job["source_size"],
        }
    if job["status"] is JobStatus.RUNNING:
        # An import's input is named by its row once it is stored: until then, it is fetched.
        phase = "fetching" if source is not None and job["input_key"] is None else "processing"
    return {  # floats as floats, as JobOut's validation makes them
        "id": job["id"],
        "status": job["status"].value,
        "processor": job["processor"],
        "params": job["params"],
        "progress": float(round(job["progress"], 4)),
        "phase": phase,
        "attempts": job["attempts"],
        "max_attempts": job["max_attempts"],
        "timeout_seconds": float(job["timeout_seconds"]),
        "next_attempt_at": job["next_attempt_at"],
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
        "delete_after_download": job["delete_after_download"],
        "error": error,
        "input": {
            "filename": job["input_filename"],
            "content_type": job["input_content_type"],
            "size": job["input_size"],
            "sha256": job["input_sha256"],
        },
        "source": source,
        "result": result,
        "callback": callback,
    }


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


class LimitsOut(BaseModel):
    max_upload_bytes: int = Field(description="Largest file one upload may carry.")
    max_active_jobs: int | None = Field(
        description="Most of the caller's jobs queued or running at once; null: unlimited."
    )
    max_storage_bytes: int | None = Field(
        description="Most bytes of the caller's inputs and results kept; null: unlimited."
    )
    rate_limit_per_minute: int | None = Field(
        description="Most requests per minute; null: unlimited."
    )
    active_jobs: int = Field(description="The caller's jobs queued or running now.")
    storage_used_bytes: int = Field(description="Bytes the caller's stored files take now.")
