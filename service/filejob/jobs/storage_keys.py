"""Storage keys of a job's files, generated from its id (never from client input)."""

from __future__ import annotations


def input_key(job_id: str) -> str:
    return f"inputs/{job_id}"


def result_key(job_id: str, attempt: int, index: int = 0) -> str:
    """The `index`-th output of `attempt` (0: `ctx.output`, then each `ctx.emit` in order).
    Each attempt writes its own results, so a stale attempt cannot replace a newer one's."""
    key = f"results/{job_id}.{attempt}"
    return key if index == 0 else f"{key}.{index}"


def job_of(key: str) -> str | None:
    """The id of the job a key belongs to; None for keys that are not a job's."""
    prefix, _, name = key.partition("/")
    if prefix not in ("inputs", "results"):
        return None
    return name.partition(".")[0] or None  # ids never hold a "."


def attempt_of(key: str) -> int | None:
    """The attempt that wrote a result key (any of its outputs); None for other keys."""
    prefix, _, name = key.partition("/")
    attempt = name.split(".")[1:2]
    if prefix != "results" or not attempt or not (attempt[0].isascii() and attempt[0].isdigit()):
        return None
    return int(attempt[0])
