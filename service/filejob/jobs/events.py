"""What the runner tells an observer (metrics) about the jobs it runs."""

from __future__ import annotations

from typing import Protocol

from filejob.jobs.model import Job
from filejob.jobs.states import JobStatus


class JobEvents(Protocol):
    """One call when an attempt starts, one when it ends. Called on the event loop; must not
    block or raise."""

    def started(self, job: Job) -> None:
        """`job` (as claimed: `attempts` counts this one) starts an attempt."""
        ...

    def ended(self, job: Job, status: JobStatus, seconds: float) -> None:
        """The attempt ended `seconds` after its start, moving the job to `status` (final, or
        `queued` for another attempt)."""
        ...
