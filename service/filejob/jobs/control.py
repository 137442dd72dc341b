"""What passes between an executor and one run of a job: a stop signal in, an outcome out."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class StopReason(StrEnum):
    """Why a run is asked to stop."""

    CANCEL = "cancel"  # a client cancelled the job: it ends `cancelled`
    SHUTDOWN = "shutdown"  # this process is stopping: the job goes back to `queued`, uncounted
    TIMEOUT = "timeout"  # the attempt's own deadline passed: it fails with `timeout`


class StopSignal:
    """Asks one run to stop, and says why. Its executor requests CANCEL or SHUTDOWN, the
    attempt's deadline TIMEOUT; the processor watches `event` (from its thread, or its child
    through `isolation`). Requests come from the event loop; the latest one's reason is the
    one the run acts on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._reason: StopReason | None = None

    def request(self, reason: StopReason) -> None:
        self._reason = reason  # before the event: whoever sees the event sees the reason
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @property
    def reason(self) -> StopReason | None:
        """Why the run was asked to stop; None while it was not."""
        return self._reason


class RunEnd(StrEnum):
    """How a run ended, as far as its executor is concerned."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"  # back to `queued`, due again after a backoff
    INTERRUPTED = "interrupted"  # back to `queued` uncounted: stopped for a shutdown
    SUPERSEDED = "superseded"  # the attempt was no longer the current one: nothing recorded
    NOT_CLAIMED = "not_claimed"  # cancelled or deleted while it waited: nothing ran


@dataclass(frozen=True)
class RunOutcome:
    """What `JobRunner.run` returns: how the run ended, and with RETRY the seconds until the
    job is due again (the executor schedules it; the row already says when)."""

    end: RunEnd
    retry_in: float | None = None

    def __post_init__(self) -> None:
        if (self.end is RunEnd.RETRY) != (self.retry_in is not None):
            raise ValueError("retry_in goes with RunEnd.RETRY, and only with it")

    @classmethod
    def retry(cls, seconds: float) -> RunOutcome:
        return cls(RunEnd.RETRY, seconds)
