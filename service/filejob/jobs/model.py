"""The `jobs` table. All SQL against it lives in `repository.py`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.orm import Base, UTCDateTime, utcnow
from filejob.jobs.states import CallbackState, JobStatus

__all__ = ["Base", "Job", "utcnow"]


def _enum_column(states: type[StrEnum]) -> Enum:
    """A VARCHAR(16) holding the members' values (not their names), refusing any other."""
    return Enum(
        states,
        native_enum=False,
        length=16,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


class Job(Base):
    __tablename__ = "jobs"

    # `seq` orders jobs for keyset pagination; `id` is the public, unguessable name.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[JobStatus] = mapped_column(_enum_column(JobStatus))
    processor: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3, server_default="3")
    # When a job waiting for a retry may run again; None: as soon as a worker is free.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=3600.0, server_default="3600")
    delete_after_download: Mapped[bool] = mapped_column(default=False)
    # The API key (`api_keys.id`) that created the job; None: anonymous (FILEJOB_AUTH=off).
    owner_id: Mapped[str | None] = mapped_column(String(32))
    # The job's entry in a shared queue (a procrastinate job id); None for the in-process one.
    queue_ref: Mapped[int | None] = mapped_column(BigInteger)

    # Webhook: POSTed once the job is final. `callback_state`: None (no callback yet or none
    # asked for), else a `CallbackState`; its queries are the webhook layer's.
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_state: Mapped[CallbackState | None] = mapped_column(_enum_column(CallbackState))
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_last_result: Mapped[str | None] = mapped_column(String(200))
    callback_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    input_key: Mapped[str | None] = mapped_column(String(128))
    input_filename: Mapped[str] = mapped_column(String(512))
    input_content_type: Mapped[str] = mapped_column(String(128))
    input_size: Mapped[int] = mapped_column(BigInteger)
    input_sha256: Mapped[str] = mapped_column(String(64))

    # An import (`source_url`): the job's input is fetched by its first attempt (jobs/imports.py);
    # until then `input_key` is None and the input_* columns hold what is known (the name the
    # URL suggests, the sha256 the client sent, size 0). `owner_quota_bytes`: the owner's
    # storage quota when the job was accepted (None: unlimited), which bounds the fetch;
    # `fetched_bytes` and `source_size` (the origin's announced length): the fetch's progress.
    source_url: Mapped[str | None] = mapped_column(Text)
    owner_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    fetched_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source_size: Mapped[int | None] = mapped_column(BigInteger)

    result_key: Mapped[str | None] = mapped_column(String(128))
    result_filename: Mapped[str | None] = mapped_column(String(512))
    result_content_type: Mapped[str | None] = mapped_column(String(128))
    result_size: Mapped[int | None] = mapped_column(BigInteger)
    result_sha256: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_jobs_status_seq", "status", "seq"),
        Index("ix_jobs_processor_seq", "processor", "seq"),
        Index("ix_jobs_finished_at", "finished_at"),
        Index("ix_jobs_owner_seq", "owner_id", "seq"),
        Index("ix_jobs_owner_status", "owner_id", "status"),
        Index("ix_jobs_callback_due", "callback_state", "callback_next_at"),
        # Which jobs changed lately, of anyone and of one owner (GET /v1/events; 0008).
        Index("ix_jobs_updated_at", "updated_at"),
        Index("ix_jobs_owner_updated", "owner_id", "updated_at"),
    )
