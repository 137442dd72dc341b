"""The state machine: one table of legal moves, enforced by the repository."""

from __future__ import annotations

from typing import Any

import pytest

from filejob.jobs.repository import JobRepository
from filejob.jobs.states import TRANSITIONS, IllegalTransition, JobStatus, check_transition

S = JobStatus


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.CANCELLED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.CANCELLED),
        (S.RUNNING, S.QUEUED),
        (S.SUCCEEDED, S.EXPIRED),
        (S.FAILED, S.EXPIRED),
        (S.CANCELLED, S.EXPIRED),
    ],
)
def test_legal(source: JobStatus, target: JobStatus) -> None:
    check_transition(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.QUEUED, S.SUCCEEDED),
        (S.SUCCEEDED, S.RUNNING),
        (S.FAILED, S.QUEUED),
        (S.EXPIRED, S.SUCCEEDED),
        (S.CANCELLED, S.RUNNING),
        (S.QUEUED, S.EXPIRED),
    ],
)
def test_illegal(source: JobStatus, target: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(source, target)


def test_final_states_only_expire() -> None:
    for status in JobStatus:
        if status.is_final:
            assert TRANSITIONS[status] <= {S.EXPIRED}


async def test_repository_refuses_illegal_transition(app: Any) -> None:
    async with app.state.services.jobs.db.write() as session:
        with pytest.raises(IllegalTransition):
            await JobRepository(session).transition("x", S.SUCCEEDED, expected=[S.QUEUED])
