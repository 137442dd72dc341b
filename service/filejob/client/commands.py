"""The client half of the `filejob` command: submit (client/submit.py), status, jobs,
download, cancel, delete, link (client/manage.py), processors.

Progress bars (Rich) and tables when stdout is a terminal, plain lines otherwise, JSON with
`--json`. A refusal prints the server's problem message and exits 1; a failed job exits 1 with
its error; Ctrl+C exits 130 (see client/options.py for every exit code).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from filejob.client import manage
from filejob.client.bars import bars
from filejob.client.follow import describe, job_outcome, wait_final, watch
from filejob.client.names import DestinationExists, Destinations
from filejob.client.options import (
    API_KEY,
    INTERRUPTED,
    JOB_ID,
    JSON_OUT,
    SERVER,
    call,
    connect,
    echo_json,
    fail,
    interruptible,
    stdout_is_terminal,
)
from filejob.client.output import human_size, parse_time, parse_when, print_table, relative_time
from filejob.client.submit import submit

if TYPE_CHECKING:
    from filejob.client.api import FilejobClient

MAX_PAGE = 500  # GET /v1/jobs's largest page


def status(
    job_id: str = JOB_ID,
    watch_it: bool = typer.Option(
        False, "--watch", help="Show the job live until it is final; exit 1 unless it succeeds."
    ),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Show one job (--watch: live, until it ends)."""
    with connect(server, api_key) as client:
        job = call(lambda: client.job(job_id), client)
        if watch_it:
            job = watch(client, job, as_json=as_json, terminal=stdout_is_terminal())
            failed = job_outcome(job)
            if failed is not None:
                raise failed
            return
    if as_json:
        echo_json(job)
        return
    for line in describe(job):
        typer.echo(line)


def jobs(
    status_filter: str | None = typer.Option(None, "--status", help="Only jobs in this state."),
    processor: str | None = typer.Option(None, "--processor", "-p", help="Only this processor's."),
    since: str | None = typer.Option(
        None, "--since", help="Only jobs created since: a duration back (10m, 2h, 3d) or a date."
    ),
    limit: int = typer.Option(50, min=1, help="How many, newest first."),
    every: bool = typer.Option(False, "--all", help="Every job (page after page), not --limit."),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """List jobs, newest first."""
    after = parse_when(since) if since else None
    with connect(server, api_key) as client:
        items = call(lambda: _listed(client, status_filter, processor, after, limit, every), client)
    if as_json:
        echo_json(items)
        return
    terminal = stdout_is_terminal()
    rows = [
        (
            j["id"],
            j["status"],
            j["processor"],
            f"{j['progress']:.0%}",
            j["input"]["filename"],
            human_size(j["input"]["size"]),
            relative_time(j["created_at"]) if terminal else j["created_at"][:19] + "Z",
        )
        for j in items
    ]
    columns = ("id", "status", "processor", "progress", "input", "size", "created")
    print_table(columns, rows, terminal)


def _listed(
    client: FilejobClient,
    status: str | None,
    processor: str | None,
    after: datetime | None,
    limit: int,
    every: bool,
) -> list[dict[str, Any]]:
    """Newest first, until `limit` (unless `every`) or the first job older than `after`."""
    found: list[dict[str, Any]] = []
    size = MAX_PAGE if every else limit
    for job in client.iter_jobs(status=status, processor=processor, page_size=size):
        if after is not None and parse_time(job["created_at"]) < after:
            break
        found.append(job)
        if not every and len(found) >= limit:
            break
    return found


def download(
    job_id: str = JOB_ID,
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to: a file, or a directory (one that exists, or ends with /); default: "
        "the result's filename, here.",
    ),
    wait: bool = typer.Option(False, "--wait", "-w", help="Wait for the job to finish first."),
    clobber: bool = typer.Option(False, "--clobber", help="Overwrite an existing file."),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Download a job's result; resumes an interrupted download and checks its sha256."""
    with connect(server, api_key) as client:
        job = call(lambda: client.job(job_id), client)
        if wait:
            job = wait_final(client, job)
        if job["status"] != "succeeded" or not job.get("result"):
            raise fail(f"job {job_id} is {job['status']}: it has no result to download")
        into_dir = output is None or output.endswith("/") or Path(output).is_dir()
        places = Destinations(Path(output or "."), into_dir=into_dir, clobber=clobber)
        try:
            dest = places.claim(job["result"]["filename"])
        except DestinationExists as exc:
            raise fail(str(exc)) from None
        try:
            with bars(stdout_is_terminal() and not as_json) as shown:
                task = shown.add(f"↓ {dest.name}", job["result"]["size"])
                path = call(
                    lambda: client.download(job, dest, progress=lambda n: shown.advance(task, n)),
                    client,
                )
        except KeyboardInterrupt:
            raise fail(
                f"download interrupted; the same command resumes it ({dest.name}.part is kept)",
                INTERRUPTED,
            ) from None
    if as_json:
        echo_json({"id": job_id, "output": str(path), "sha256": job["result"]["sha256"]})
    else:
        typer.echo(str(path))


def processors(
    server: str | None = SERVER, api_key: str | None = API_KEY, as_json: bool = JSON_OUT
) -> None:
    """List the processors this server offers."""
    with connect(server, api_key) as client:
        items = call(client.processors, client)
    if as_json:
        echo_json(items)
        return
    for item in items:
        typer.echo(f"{item['name']}\t{item['description']}")


def register(app: typer.Typer) -> None:
    for command in (
        submit,
        status,
        jobs,
        download,
        manage.cancel,
        manage.delete,
        manage.link,
        processors,
    ):
        app.command()(interruptible(command))
