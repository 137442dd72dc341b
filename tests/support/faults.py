"""Faults injected into an app under test."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from filejob.jobs.runner import JobRunner


def fail_finishing(monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """Make the next `times` ends of attempts raise, as a database gone away would; returns
    the statuses that could not be written."""
    real = JobRunner._finish
    refused: list[str] = []

    async def finish(runner: JobRunner, job: Any, status: Any, *args: Any, **kwargs: Any) -> bool:
        if len(refused) < times:
            refused.append(status.value)
            raise OperationalError("UPDATE jobs", {}, Exception("the database went away"))
        return await real(runner, job, status, *args, **kwargs)

    monkeypatch.setattr(JobRunner, "_finish", finish)
    return refused
