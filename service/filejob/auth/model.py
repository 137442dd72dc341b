"""The `api_keys` table. All SQL against it lives in `repository.py`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from filejob.db.orm import Base, UTCDateTime


class ApiKey(Base):
    __tablename__ = "api_keys"

    # The public name of a key (`key_…`): shown by `filejob keys list`, stored on its jobs.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # sha256 of the bearer token; the token itself is shown once and never stored.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    # Signs this key's webhook deliveries; receivers hold it, so it is kept (not hashed).
    webhook_secret: Mapped[str] = mapped_column(String(64))
    # None: the server-wide default from Settings.
    max_active_jobs: Mapped[int | None] = mapped_column(Integer)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    rate_limit: Mapped[int | None] = mapped_column(Integer)  # requests per minute
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
