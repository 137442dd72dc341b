"""The client keeps its own copy of the API's final statuses (it imports nothing of the
server); this keeps the copy true."""

from __future__ import annotations

from filejob.client.api import FINAL
from filejob.jobs.states import JobStatus


def test_the_clients_final_statuses_are_the_servers() -> None:
    assert {s.value for s in JobStatus if s.is_final} == FINAL
