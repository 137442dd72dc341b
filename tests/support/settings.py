"""Settings for an app under test, and the deployment profiles tests run on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filejob.config import Settings

# embedded: SQLite + the local folder + in-process execution. distributed: PostgreSQL + S3
# (SeaweedFS) + procrastinate, with a worker in the test's event loop.
PROFILES = ["embedded", "distributed"]


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on `data_dir`, quick to test with (fast progress, no fsync, no periodic sweep,
    no free-space floor), with `overrides` on top."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "workers": 2,
        "progress_interval": 0.02,
        "sweep_interval": 3600,
        "fsync": False,
        "min_free_bytes": 0,  # CI disks can be small; admission control has its own tests
    }
    values.update(overrides)
    return Settings(**values)
