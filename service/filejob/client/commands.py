"""The client half of the `filejob` command: submit, status, jobs, download, cancel, processors.

Progress bars (Rich) when stdout is a terminal, plain lines otherwise, JSON with `--json`.
A refusal prints the server's problem message and exits 1; a failed job exits 1 with its error.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:  # imported when a client command runs, never by `serve` or `worker`
    from rich.progress import Progress, TaskID

    from filejob.client.api import FilejobClient

T = TypeVar("T")

SERVER = typer.Option("http://127.0.0.1:8000", "--server", envvar="FILEJOB_SERVER", help="API URL.")
API_KEY = typer.Option(None, "--api-key", envvar="FILEJOB_API_KEY", help="API key, if required.")
JSON_OUT = typer.Option(False, "--json", help="Machine-readable output.")
# Ids made by older servers may start with "-": give those after "--" (status -- -abc...).
JOB_ID = typer.Argument(..., metavar="ID", help="A job id.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"filejob: {message}", err=True)
    return typer.Exit(1)


def _call(work: Callable[[], T], server: str) -> T:
    """Run a client call; refusals and network failures become one line and exit 1."""
    import httpx

    from filejob.client.api import ApiError

    try:
        return work()
    except ApiError as exc:
        raise _fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise _fail(f"cannot talk to {server}: {exc}") from None


def _client(server: str, api_key: str | None) -> FilejobClient:
    from filejob.client.api import FilejobClient

    return FilejobClient(server, api_key)


def _params(pairs: list[str]) -> dict[str, Any]:
    """key=value pairs; a value that parses as JSON is taken as such (numbers, booleans)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@dataclass
class _Outcome:
    file: Path
    job: dict[str, Any] | None = None
    output: Path | None = None
    error: str | None = None


@dataclass
class _Bars:
    """Rich progress bars when attached to a terminal; otherwise nothing is drawn."""

    progress: Progress | None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, label: str, total: float | None) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(label, total=total)

    def advance(self, task: TaskID | None, amount: float) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, amount)

    def update(self, task: TaskID | None, **fields: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, **fields)


@contextmanager
def _bars(enabled: bool) -> Iterator[_Bars]:
    if not enabled:
        yield _Bars(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield _Bars(progress)


def _destination(output: Path, job: dict[str, Any], into_dir: bool) -> Path:
    if into_dir:
        output.mkdir(parents=True, exist_ok=True)
        return output / Path(job["result"]["filename"]).name
    return output


def _one(
    client: FilejobClient,
    bars: _Bars,
    file: Path,
    processor: str,
    params: dict[str, Any],
    wait: bool,
    output: Path | None,
    into_dir: bool,
) -> _Outcome:
    import httpx

    from filejob.client.api import ApiError

    outcome = _Outcome(file)
    try:
        upload = bars.add(f"↑ {file.name}", file.stat().st_size)
        job = client.submit(file, processor, params, progress=lambda n: bars.advance(upload, n))
        outcome.job = job
        if not wait:
            return outcome
        # The processing bar shows how much of the input is done (the job's progress).
        size = job["input"]["size"]
        running = bars.add(f"⚙ {file.name} {job['id'][:8]}", size)
        for state in client.events(job["id"]):
            bars.update(running, completed=state.get("progress", 0.0) * size)
            outcome.job = state
        job = outcome.job
        if job["status"] != "succeeded":
            error = job.get("error") or {}
            outcome.error = f"{file}: job {job['id']} {job['status']}" + (
                f": {error.get('message')} ({error.get('code')})" if error else ""
            )
            return outcome
        if output is not None:
            down = bars.add(f"↓ {job['result']['filename']}", job["result"]["size"])
            dest = _destination(output, job, into_dir)
            outcome.output = client.download(job, dest, progress=lambda n: bars.advance(down, n))
    except ApiError as exc:
        outcome.error = f"{file}: {exc}"
    except (httpx.HTTPError, OSError) as exc:
        outcome.error = f"{file}: {exc}"
    return outcome


def submit(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    processor: str = typer.Option(..., "--processor", "-p", help="Processor name."),
    param: list[str] = typer.Option([], "--param", "-P", help="Processor param, key=value."),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the jobs to their end."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Download results here: a file, or a directory (one that exists, ends with /, "
        "or is given for several files); implies --wait.",
    ),
    server: str = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Upload FILES, one job each, concurrently; --wait follows them, --output downloads."""
    params = _params(param)
    into_dir = output is not None and (
        len(files) > 1 or output.endswith("/") or Path(output).is_dir()
    )
    target = Path(output) if output is not None else None
    wait = wait or target is not None
    interactive = sys.stdout.isatty() and not as_json
    with (
        _client(server, api_key) as client,
        _bars(interactive) as bars,
        ThreadPoolExecutor(max_workers=min(8, len(files))) as pool,
    ):
        outcomes = list(
            pool.map(
                lambda f: _one(client, bars, f, processor, params, wait, target, into_dir),
                files,
            )
        )
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "file": str(o.file),
                        "job": o.job,
                        "output": str(o.output) if o.output else None,
                        "error": o.error,
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    else:
        for o in outcomes:
            if o.job is not None:
                where = f"\t{o.output}" if o.output else ""
                typer.echo(f"{o.job['id']}\t{o.job['status']}\t{o.file}{where}")
    errors = [o.error for o in outcomes if o.error]
    for error in errors:
        typer.echo(f"filejob: {error}", err=True)
    if errors:
        raise typer.Exit(1)


def status(
    job_id: str = JOB_ID,
    server: str = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Show one job."""
    with _client(server, api_key) as client:
        job = _call(lambda: client.job(job_id), server)
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    typer.echo(f"id:        {job['id']}")
    typer.echo(f"status:    {job['status']}")
    typer.echo(f"processor: {job['processor']}")
    typer.echo(f"progress:  {job['progress']:.0%}")
    typer.echo(f"attempts:  {job['attempts']}/{job['max_attempts']}")
    typer.echo(f"input:     {job['input']['filename']} ({job['input']['size']} bytes)")
    if job.get("result"):
        typer.echo(f"result:    {job['result']['filename']} ({job['result']['size']} bytes)")
    if job.get("error"):
        typer.echo(f"error:     {job['error']['code']}: {job['error']['message']}")


def jobs(
    status_filter: str | None = typer.Option(None, "--status", help="Only jobs in this state."),
    limit: int = typer.Option(50, min=1, max=500, help="How many, newest first."),
    server: str = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """List jobs, newest first."""
    with _client(server, api_key) as client:
        items = _call(lambda: client.jobs(status_filter, limit), server)
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    columns = ("id", "status", "processor", "progress", "input", "created")
    rows = [
        (
            j["id"],
            j["status"],
            j["processor"],
            f"{j['progress']:.0%}",
            j["input"]["filename"],
            j["created_at"][:19],
        )
        for j in items
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns)
        table.columns[0].no_wrap = True  # an id is only useful whole
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    else:
        typer.echo("\t".join(c.upper() for c in columns))
        for row in rows:
            typer.echo("\t".join(row))


def download(
    job_id: str = JOB_ID,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Where to (default: the result's filename, here)."
    ),
    server: str = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Download a job's result; resumes an interrupted download and checks its sha256."""
    with _client(server, api_key) as client:
        job = _call(lambda: client.job(job_id), server)
        if job["status"] != "succeeded" or not job.get("result"):
            raise _fail(f"job {job_id} is {job['status']}: it has no result to download")
        dest = _destination(output or Path("."), job, output is None or output.is_dir())
        with _bars(sys.stdout.isatty() and not as_json) as bars:
            task = bars.add(f"↓ {dest.name}", job["result"]["size"])
            path = _call(
                lambda: client.download(job, dest, progress=lambda n: bars.advance(task, n)),
                server,
            )
    if as_json:
        typer.echo(
            json.dumps({"id": job_id, "output": str(path), "sha256": job["result"]["sha256"]})
        )
    else:
        typer.echo(str(path))


def cancel(
    job_id: str = JOB_ID,
    server: str = SERVER,
    api_key: str | None = API_KEY,
) -> None:
    """Cancel a queued or running job (a finished one is deleted, with its files)."""
    with _client(server, api_key) as client:
        _call(lambda: client.cancel(job_id), server)
    typer.echo(f"cancelled {job_id}")


def processors(
    server: str = SERVER, api_key: str | None = API_KEY, as_json: bool = JSON_OUT
) -> None:
    """List the processors this server offers."""
    with _client(server, api_key) as client:
        items = _call(client.processors, server)
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for item in items:
        typer.echo(f"{item['name']}\t{item['description']}")


def register(app: typer.Typer) -> None:
    for command in (submit, status, jobs, download, cancel, processors):
        app.command()(command)
