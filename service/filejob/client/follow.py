"""Following jobs to their end, and letting go of them: the first Ctrl+C while following
detaches (the jobs go on running on the server), says which jobs those are and how to cancel
them, and ends the command with exit code 130, as `gh run watch` does."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from filejob.client.options import INTERRUPTED, call, fail
from filejob.client.output import human_size

if TYPE_CHECKING:
    from filejob.client.api import FilejobClient

State = dict[str, Any]


def merge(job: State, event: State) -> State:
    """A job updated by an event: `progress` events carry only id, status and progress."""
    return {**job, **event}


def follow(client: FilejobClient, job: State, on_state: Callable[[State], None]) -> State:
    """The job once final, `on_state` called on each change before that."""
    for event in client.events(job["id"]):
        job = merge(job, event)
        on_state(job)
    return job


def detach_lines(running: Sequence[tuple[str, str]]) -> list[str]:
    """What to say of jobs left running (id, what it is) on detaching."""
    if not running:
        return []
    lines = ["stopped following; these jobs keep running on the server:"]
    lines += [f"  {job_id}  {label}" for job_id, label in running]
    lines.append("cancel them with: filejob cancel " + " ".join(job_id for job_id, _ in running))
    return lines


def detach(running: Sequence[tuple[str, str]]) -> typer.Exit:
    """Say which jobs keep running; the exit to raise (130)."""
    for line in detach_lines(running):
        typer.echo(f"filejob: {line}" if not line.startswith(" ") else line, err=True)
    return typer.Exit(INTERRUPTED)


def describe(job: State) -> list[str]:
    """`filejob status`'s lines."""
    lines = [
        f"id:        {job['id']}",
        f"status:    {job['status']}",
        f"processor: {job['processor']}",
        f"progress:  {job['progress']:.0%}",
        f"attempts:  {job['attempts']}/{job['max_attempts']}",
        f"input:     {job['input']['filename']} ({human_size(job['input']['size'])})",
    ]
    if job.get("result"):
        result = job["result"]
        lines.append(f"result:    {result['filename']} ({human_size(result['size'])})")
    if job.get("error"):
        lines.append(f"error:     {job['error']['code']}: {job['error']['message']}")
    return lines


def watch(client: FilejobClient, job: State, *, as_json: bool, terminal: bool) -> State:
    """`status --watch`: the job live until it is final. On a terminal its lines are redrawn
    in place; in a pipe one line per change (id, status, progress); with --json one JSON
    document per change (JSON Lines). Ctrl+C detaches."""
    last: list[tuple[str, float]] = []

    def line(state: State) -> None:
        seen = (state["status"], round(float(state.get("progress", 0.0)), 2))
        if last and last[-1] == seen:
            return
        last.append(seen)
        if as_json:
            typer.echo(json.dumps(state))
        else:
            typer.echo(f"{state['id']}\t{state['status']}\t{state.get('progress', 0.0):.0%}")

    try:
        if terminal and not as_json:
            return _watch_live(client, job)
        line(job)
        if job["status"] in _final():
            return job
        return call(lambda: follow(client, job, line), client)
    except KeyboardInterrupt:
        raise detach([(job["id"], job["input"]["filename"])]) from None


def _watch_live(client: FilejobClient, job: State) -> State:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    with Live(Text("\n".join(describe(job))), console=Console(), auto_refresh=False) as live:

        def redraw(state: State) -> None:
            live.update(Text("\n".join(describe(state))), refresh=True)

        if job["status"] in _final():
            return job
        return call(lambda: follow(client, job, redraw), client)


def wait_final(client: FilejobClient, job: State) -> State:
    """`download --wait`: the job once final (Ctrl+C detaches)."""
    if job["status"] in _final():
        return job
    try:
        return call(lambda: follow(client, job, lambda _: None), client)
    except KeyboardInterrupt:
        raise detach([(job["id"], job["input"]["filename"])]) from None


def job_outcome(job: State) -> typer.Exit | None:
    """The exit of a job that ended without a result (None: it succeeded)."""
    if job["status"] == "succeeded":
        return None
    error = job.get("error") or {}
    why = f": {error.get('message')} ({error.get('code')})" if error else ""
    return fail(f"job {job['id']} {job['status']}{why}")


def _final() -> frozenset[str]:
    from filejob.client.api import FINAL

    return FINAL
