"""The `resumable_uploads` table. All SQL against it lives in `repository.py`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.orm import Base, UTCDateTime
from filejob.jobs.model import _enum_column
from filejob.resumable.errors import UploadExpired, UploadNotFound


class UploadState(StrEnum):
    RECEIVING = "receiving"
    """Bytes are still due; `received` of them are durable."""
    COMPLETE = "complete"
    """Every byte arrived and the job was made (`job_id`), in one transaction."""
    EXPIRED = "expired"
    """A tombstone: the bytes are gone; the upload answers 410 until a later sweep removes
    the row (then 404)."""


class ResumableUpload(Base):
    __tablename__ = "resumable_uploads"

    # The public, unguessable name (the last segment of its URL).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The API key that created it (`api_keys.id`); None: anonymous (FILEJOB_AUTH=off).
    owner_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[UploadState] = mapped_column(_enum_column(UploadState))
    # Upload-Offset: bytes written, fsynced (with FILEJOB_FSYNC) and acknowledged.
    received: Mapped[int] = mapped_column(BigInteger)
    # Upload-Length; None while deferred (creation-defer-length).
    length: Mapped[int | None] = mapped_column(BigInteger)
    # The job's fields from Upload-Metadata (processor, params, ...: a `JobRequest`), the
    # file's name and type as the client gave them, and the header itself (HEAD echoes it).
    job_request: Mapped[dict[str, Any]] = mapped_column(JSON)
    filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(255))
    upload_metadata: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Unfinished: when it expires (created_at + FILEJOB_UPLOAD_TTL). Complete: when its row
    # stops answering (completion + the TTL). Expired: when the tombstone was made.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    job_id: Mapped[str | None] = mapped_column(String(32))
    # Concatenation: "partial" (a part: no job of its own; complete, it waits for a final
    # upload to use it) or "final" (made of `parts`, the partial uploads' ids, in order).
    concat: Mapped[str | None] = mapped_column(String(16))
    parts: Mapped[list[str] | None] = mapped_column(JSON)
    # Who writes its bytes now (one request, on any server), and until when unless renewed.
    lease_token: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The owner's uploads in progress (their reserved bytes count against the quota).
        Index("ix_resumable_uploads_owner_state", "owner_id", "state"),
        # The sweep's look-ups: what expired, and which tombstones are old.
        Index("ix_resumable_uploads_state_expires", "state", "expires_at"),
    )

    @classmethod
    def created(
        cls,
        upload_id: str,
        owner_id: str | None,
        job_request: dict[str, Any],
        filename: str | None,
        content_type: str | None,
        metadata: str | None,
        *,
        now: datetime,
        expires_at: datetime,
        **state: Any,
    ) -> ResumableUpload:
        """A new row: who made it, the job it carries, when; `state` sets the rest (state,
        received, length, concat, parts)."""
        return cls(
            id=upload_id,
            owner_id=owner_id,
            job_request=job_request,
            filename=filename,
            content_type=content_type,
            upload_metadata=metadata,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
            **state,
        )


def answerable(upload: ResumableUpload | None, upload_id: str, now: datetime) -> ResumableUpload:
    """`upload` if it can be answered about; else why not (missing or another owner's: 404;
    expired: 410)."""
    if upload is None:
        raise UploadNotFound(f"No upload {upload_id!r}.")
    if upload.state is UploadState.EXPIRED or upload.expires_at <= now:
        raise UploadExpired(f"Upload {upload_id} expired; start a new one.")
    return upload
