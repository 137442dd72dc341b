"""Job states and the only legal moves between them; the states of a job's webhook."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    """Accepted: the input is stored and the row committed; waiting for a worker."""
    RUNNING = "running"
    """A worker is processing it."""
    SUCCEEDED = "succeeded"
    """Finished; the result can be downloaded."""
    FAILED = "failed"
    """Finished without a result; `error` says why."""
    CANCELLED = "cancelled"
    """Stopped at a client's request before it finished."""
    EXPIRED = "expired"
    """Its files were removed (retention or delete-after-download); the row remains."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    # RUNNING -> QUEUED: the process stopped mid-job and the job waits to run again.
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset({JobStatus.EXPIRED}),
    JobStatus.FAILED: frozenset({JobStatus.EXPIRED}),
    JobStatus.CANCELLED: frozenset({JobStatus.EXPIRED}),
    JobStatus.EXPIRED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A code path asked for a move the state machine forbids: a bug, never a client error."""


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The states from which `target` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def check_transition(source: JobStatus, target: JobStatus) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(f"{source} -> {target}")


class CallbackState(StrEnum):
    """Where a final job's webhook stands (`Job.callback_state`; None before the job is final
    or without a callback). The values are the column's and the API's strings."""

    PENDING = "pending"
    """Due, or being retried: `callback_next_at` says when the next attempt is."""
    DELIVERED = "delivered"
    """The receiver answered 2xx."""
    FAILED = "failed"
    """Given up: attempts used up, or the target was refused."""
