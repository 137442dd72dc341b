"""Storage keys of a job's files, generated from its id (never from client input)."""

from __future__ import annotations


def input_key(job_id: str) -> str:
    return f"inputs/{job_id}"


def result_key(job_id: str, attempt: int) -> str:
    """Each attempt writes its own result, so a stale attempt cannot replace a newer one's."""
    return f"results/{job_id}.{attempt}"


def job_of(key: str) -> str | None:
    """The id of the job a key belongs to; None for keys that are not a job's."""
    prefix, _, name = key.partition("/")
    if prefix not in ("inputs", "results"):
        return None
    return name.partition(".")[0] or None  # ids never hold a "."
