"""Settings, read once from the environment (prefix `FILEJOB_`) and passed down explicitly."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024
GiB = 1024 * MiB


class Settings(BaseSettings):
    """Every knob the server has; the README's settings table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix="FILEJOB_", extra="ignore")

    data_dir: Path = Field(
        Path("storage"), description="Root for the SQLite database and stored files."
    )
    database_url: str = Field(
        "", description="SQLAlchemy async URL; empty means SQLite at <data_dir>/filejob.db."
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

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            db_path = (self.data_dir / "filejob.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{db_path}"
        return self
