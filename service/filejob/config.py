"""Settings, read once from the environment (prefix `FILEJOB_`) and passed down explicitly."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB

# Secrets that appear in examples and templates; refused as FILEJOB_SECRET_KEY.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "change_me", "secret", "password", "filejob", "example", "xxx"}
)
MIN_SECRET_LENGTH = 32


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every knob the server has; docs/settings.md's table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix="FILEJOB_", extra="ignore")

    data_dir: Path = Field(
        Path("storage"), description="Root for the SQLite database and stored files."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means SQLite at <data_dir>/filejob.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host/db.",
    )
    storage_url: str = Field(
        "",
        description="Where files live: empty or file://PATH for a local folder (default: "
        "<data_dir>), s3://BUCKET/PREFIX for an S3-compatible store.",
        pattern=r"^$|^file://.+|^s3://[^/]+(/.*)?$",
    )
    s3_endpoint: str = Field(
        "", description="S3 endpoint URL for non-AWS stores (else AWS_ENDPOINT_URL or AWS)."
    )
    s3_region: str = Field("", description="S3 region (else AWS_REGION / AWS_DEFAULT_REGION).")
    s3_access_key_id: str = Field("", description="S3 access key (else AWS_ACCESS_KEY_ID).")
    s3_secret_access_key: SecretStr = Field(
        SecretStr(""), description="S3 secret key (else AWS_SECRET_ACCESS_KEY)."
    )
    s3_presigned_downloads: bool = Field(
        False,
        description="Answer result downloads with a 307 to a presigned S3 URL (S3 storage "
        "only; jobs with delete_after_download are still streamed).",
    )
    s3_public_endpoint: str = Field(
        "",
        description="Endpoint URL put into presigned download links, when clients reach the "
        "store at another address than this server does (default: FILEJOB_S3_ENDPOINT).",
    )
    s3_presign_ttl: int = Field(
        300,
        ge=1,
        le=7 * 24 * 3600,
        description="Seconds a presigned download URL stays valid (S3 allows at most 7 days).",
    )
    db_busy_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a request waits for a locked SQLite database before a 503.",
    )
    host: str = Field("127.0.0.1", description="Address `filejob serve` binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port `filejob serve` listens on.")
    max_upload_bytes: int = Field(
        1 * GiB, gt=0, description="Largest accepted upload (file part), in bytes."
    )
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        gt=0,
        le=256,
        description="Jobs processed at once; the rest wait in FIFO order.",
    )
    isolation_max_jobs: int = Field(
        1000,
        ge=0,
        description="Jobs a process-isolated processor's worker process runs before it is "
        "replaced by a fresh one (0: no limit).",
    )
    isolation_max_rss_growth: int = Field(
        256 * MiB,
        ge=0,
        description="Bytes a worker process's RSS may grow over its warm size before it is "
        "replaced by a fresh one (0: no limit).",
    )
    max_attempts: int = Field(
        3, ge=1, le=100, description="Most attempts per job; a job may ask for fewer."
    )
    max_job_seconds: float = Field(
        3600.0, gt=0, description="Longest a job may run (per attempt), whatever it asks for."
    )
    retry_base_delay: float = Field(
        2.0, ge=0, description="Seconds before the first retry; doubles each time, with jitter."
    )
    retry_max_delay: float = Field(300.0, ge=0, description="Longest wait between two attempts.")
    min_free_bytes: int = Field(
        256 * MiB,
        ge=0,
        description="Uploads are refused (507) while less than this is free under data_dir.",
    )
    result_ttl: float = Field(
        24 * 3600.0, gt=0, description="Seconds a finished job's files are kept."
    )
    sweep_interval: float = Field(
        60.0, gt=0, description="Seconds between retention/orphan sweeps."
    )
    orphan_grace: float = Field(
        3600.0,
        ge=0,
        description="Age in seconds before an unreferenced stored or temp file is removed.",
    )
    progress_interval: float = Field(
        0.5, gt=0, description="Least seconds between two progress writes of one job."
    )
    fsync: bool = Field(
        True,
        description="fsync stored inputs and results before acknowledging them "
        "(survives power loss, not only a process crash).",
    )
    spool_memory_bytes: int = Field(
        1 * MiB, ge=0, description="Upload bytes held in memory before spooling to disk."
    )
    shutdown_grace: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM/SIGINT, seconds running jobs get to finish before being "
        "stopped (they then stay queued for the next start).",
    )
    log_level: str = Field("info", description="uvicorn/filejob log level.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="Log lines as JSON or text; `auto`: JSON unless stderr is a terminal.",
    )
    access_log: bool = Field(
        True,
        description="A log line per HTTP request. Where clients poll by the thousand a second "
        "the lines cost more than the polls: turn them off (requests are still counted, by "
        "route and status, in /metrics).",
    )
    executor: Literal["inprocess", "procrastinate"] = Field(
        "inprocess",
        description="Who runs jobs: `inprocess` (the server itself) or `procrastinate` "
        "(`filejob worker` processes sharing the PostgreSQL database; needs PostgreSQL).",
    )
    stalled_after: float = Field(
        60.0,
        ge=2,
        description="procrastinate: a job whose worker has been silent this many seconds "
        "(killed, frozen, cut off) is run again by another worker within this time.",
    )

    # -- identity and limits (see docs/security.md) --
    auth: Literal["required", "off"] | None = Field(
        None,
        description="`required`: every /v1 request needs an API key; `off`: anonymous access. "
        "Unset: `off` when `host` is a loopback address, else `required`.",
    )
    allow_public_without_auth: bool = Field(
        False, description="Let `auth=off` serve on a non-loopback address (refused otherwise)."
    )
    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Signs result links; comma-separated for rotation (the first signs, all "
        "verify). At least 32 characters each. Unset: a secret generated once and kept in the "
        "database, shared by every process.",
    )
    result_link_ttl: int = Field(
        3600, ge=60, description="Seconds a job's signed `result.url` stays valid."
    )
    max_result_link_ttl: int = Field(
        7 * 24 * 3600, ge=60, description="Longest `ttl` a client may ask of `/result-link`."
    )
    max_active_jobs: int = Field(
        100, ge=0, description="Per-key default: most queued plus running jobs (0: unlimited)."
    )
    max_storage_bytes: int = Field(
        10 * GiB,
        ge=0,
        description="Per-key default: most bytes of inputs and results kept (0: unlimited).",
    )
    rate_limit: int = Field(
        600, ge=0, description="Per-key default: most requests per minute (0: unlimited)."
    )
    max_form_parts: int = Field(
        16, ge=2, le=1000, description="Most parts (fields and the file) in an upload form."
    )
    max_filename_length: int = Field(
        255,
        ge=16,
        le=1024,
        description="Longest shown filename, in UTF-8 bytes; longer "
        "names are shortened, keeping the extension.",
    )
    body_timeout: float = Field(
        60.0, gt=0, description="Seconds an upload may go without sending a byte before 408."
    )
    body_deadline: float = Field(
        3600.0,
        gt=0,
        description="Seconds a whole upload body may take, however steadily it arrives, "
        "before 408.",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request's line and headers (from its "
        "first byte, or from the connection's opening) before 408 and the connection closes.",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * MiB,
        description="Most bytes of a request's line and headers (trailers included) before 431.",
    )
    max_headers: int = Field(
        100, ge=8, le=10_000, description="Most header fields in a request before 431."
    )
    rate_limit_storage: str = Field(
        "",
        description="Where per-key request counts live, as a `limits` storage URI shared by "
        "every API server (e.g. redis://127.0.0.1:6379/0); empty: each process counts in its "
        "own memory, so N servers allow N times the limit.",
    )
    webhook_allow_private: bool = Field(
        False, description="Allow callbacks to loopback, private and link-local addresses."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""),
        description="Signs webhooks of anonymous jobs (auth off); each API key has its own secret.",
    )
    webhook_timeout: float = Field(
        5.0, gt=0, le=60, description="Seconds one webhook delivery may take."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=50, description="Most delivery attempts of one webhook."
    )
    webhook_retry_delay: float = Field(
        5.0, ge=0, description="Seconds before the first redelivery; doubles each time."
    )
    import_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Regular expressions (whitespace-separated, or a JSON array): when any is "
        "set, an import's `source_url`, and every redirect it follows, must match one of them "
        "whole (Python `re.fullmatch`, against the URL with its host normalised).",
    )
    import_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Regular expressions as FILEJOB_IMPORT_ALLOW's: a `source_url`, or a "
        "redirect, that matches one whole is refused.",
    )
    import_allow_private: bool = Field(
        False,
        description="Allow imports from loopback, private and link-local addresses.",
    )
    import_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an import's fetch may wait to connect, or for its next bytes, "
        "before the attempt fails (and is retried like any other).",
    )
    idempotency_ttl: float = Field(
        86400.0,
        gt=0,
        description="Seconds an Idempotency-Key of POST /v1/jobs is remembered after its job "
        "was accepted: a repeat within them gets the same job.",
    )
    upload_ttl: float = Field(
        24 * 3600.0,
        gt=0,
        description="Seconds a resumable (tus) upload may take from its creation to its last "
        "byte; then its bytes are removed and it answers 410. A finished upload's URL answers "
        "(with its job's link) for as long again.",
    )

    @field_validator("import_allow", "import_deny", mode="before")
    @classmethod
    def _patterns(cls, value: Any) -> Any:
        """A JSON array, or patterns separated by whitespace (a URL has none to match)."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else value.split()
        return value

    @field_validator("import_allow", "import_deny")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns

    @property
    def auth_required(self) -> bool:
        return self.auth == "required"

    @property
    def secret_keys(self) -> list[bytes]:
        raw = self.secret_key.get_secret_value()
        return [s.strip().encode() for s in raw.split(",") if s.strip()]

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            db_path = (self.data_dir / "filejob.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{db_path}"
        return self

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgresql+"))

    @model_validator(mode="after")
    def _executor_needs_postgres(self) -> Settings:
        if self.executor == "procrastinate" and not self.uses_postgres:
            raise ValueError(
                "FILEJOB_EXECUTOR=procrastinate keeps its queue in PostgreSQL: set "
                "FILEJOB_DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST/DB"
            )
        return self

    @model_validator(mode="after")
    def _storage_options(self) -> Settings:
        if self.s3_presigned_downloads and not self.storage_url.startswith("s3://"):
            raise ValueError("FILEJOB_S3_PRESIGNED_DOWNLOADS needs an s3:// FILEJOB_STORAGE_URL")
        return self

    @model_validator(mode="after")
    def _safe_auth(self) -> Settings:
        if self.auth is None:
            self.auth = "off" if is_loopback(self.host) else "required"
        if self.auth == "off" and not is_loopback(self.host) and not self.allow_public_without_auth:
            raise ValueError(
                f"refusing to serve {self.host} without authentication: set FILEJOB_AUTH=required "
                "(and create keys with `filejob keys create`), bind a loopback address, or set "
                "FILEJOB_ALLOW_PUBLIC_WITHOUT_AUTH=true if something in front of filejob "
                "authenticates"
            )
        for secret in self.secret_keys:
            if secret.decode().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"FILEJOB_SECRET_KEY holds a placeholder or a secret shorter than "
                    f"{MIN_SECRET_LENGTH} characters; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        return self
