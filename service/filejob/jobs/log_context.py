"""The id of the job a log line is about, set for the length of its run (a context variable:
its tasks and threads carry it too). The log formatters print it."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)


@contextmanager
def about_job(value: str) -> Iterator[None]:
    """Tag the log lines written inside the block with `value` as their job id."""
    token = job_id.set(value)
    try:
        yield
    finally:
        job_id.reset(token)
