"""The repository enforces the state machine (tests/unit/jobs/test_states.py has its table)."""

from __future__ import annotations

from typing import Any

import pytest

from filejob.jobs.repository import JobRepository
from filejob.jobs.states import IllegalTransition, JobStatus

S = JobStatus


async def test_repository_refuses_illegal_transition(app: Any) -> None:
    async with app.state.services.jobs.db.write() as session:
        with pytest.raises(IllegalTransition):
            await JobRepository(session).transition("x", S.SUCCEEDED, expected=[S.QUEUED])
