"""The state machine: one table of legal moves (the repository enforces it:
tests/api/jobs/test_transitions.py)."""

from __future__ import annotations

import pytest

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
