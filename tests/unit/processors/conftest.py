"""Run processors over real files in tmp_path, the way the runner does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Job, MakeJob


@pytest.fixture
def make_job(tmp_path: Path) -> Iterator[MakeJob]:
    """make_job(data_or_path, filename=..., content_type=..., cancel_after_reports=None)."""
    jobs: list[Job] = []

    def make(
        data: bytes | Path,
        filename: str = "input.bin",
        content_type: str = "application/octet-stream",
        cancel_after_reports: int | None = None,
    ) -> Job:
        n = len(jobs)
        if isinstance(data, Path):
            input_path = data
        else:
            input_path = tmp_path / f"input-{n}"
            input_path.write_bytes(data)
        output_path = tmp_path / f"output-{n}"
        job = Job(input_path, output_path, filename, content_type, cancel_after_reports)
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        job.close()
