"""`filejob submit`: upload files (or name URLs), one job each, concurrently; follow them;
download results. How each input is sent (multipart, tus, source_url) is in sending.py.

Ctrl+C, once: uploads under way stop at their next chunk (a multipart one's job is never
created; a resumable one is kept, for the same command to resume), followed jobs are let go
(they keep running on the server), downloads keep their part files; the command says what was
stopped, prints the jobs that exist with their ids and how to cancel them, and exits 130. A
second Ctrl+C ends the process at once.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

import typer

from filejob.client.bars import Bars, bars
from filejob.client.follow import detach_lines, merge
from filejob.client.names import DestinationExists, Destinations, NotADirectory
from filejob.client.options import (
    API_KEY,
    INTERRUPTED,
    JSON_OUT,
    SERVER,
    USAGE,
    call,
    connect,
    fail,
    network_problem,
    stdout_is_terminal,
)
from filejob.client.output import human_size, parse_size

if TYPE_CHECKING:  # httpx is imported when a submit runs, not by `serve`
    from filejob.client.api import FilejobClient
    from filejob.client.sending import Item

MAX_AT_ONCE = 8  # files uploaded (and jobs followed) at once


class Interrupts:
    """While entered, the first SIGINT sets `stop` (the work winds down on its own); a second
    one ends the process at once, exit code 130."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            os.write(2, b"\nfilejob: interrupted again: stopping now\n")
            os._exit(INTERRUPTED)
        self.stop.set()

    def __enter__(self) -> Interrupts:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        signal.signal(signal.SIGINT, self.previous)


@dataclass
class Outcome:
    item: Item
    stage: str = "waiting"  # waiting, upload, follow, download, done
    job: dict[str, Any] | None = None
    output: Path | None = None
    error: str | None = None
    stopped: str | None = None  # what Ctrl+C stopped: "upload", "follow", "download"

    @property
    def label(self) -> str:
        return self.item.label

    def document(self) -> dict[str, Any]:
        file = self.item.file
        return {
            "file": str(file) if file is not None else None,
            **({"url": self.item.url} if self.item.url is not None else {}),
            "job": self.job,
            "output": str(self.output) if self.output else None,
            "error": self.error,
            "interrupted": self.stopped,
        }


@dataclass
class Request:
    processor: str
    params: dict[str, Any]
    wait: bool
    places: Destinations | None
    resumable_above: int
    urls: list[str] = field(default_factory=list)


def items_of(files: list[Path], urls: list[str]) -> list[Item]:
    """The run's inputs, a file named twice numbered by its occurrence (two jobs, two
    uploads to resume)."""
    from filejob.client.sending import Item

    seen: Counter[Path] = Counter()
    items = []
    for file in files:
        items.append(Item(file=file, occurrence=seen[file.resolve()]))
        seen[file.resolve()] += 1
    return items + [Item(url=url) for url in urls]


class Run:
    """One submit's inputs, each carried through its stages by a pool of daemon threads (a
    thread following a job blocks in a read; at Ctrl+C it is left behind, not waited for)."""

    def __init__(self, client: FilejobClient, request: Request, files: list[Path]) -> None:
        from filejob.client.sending import Sender

        self.client = client
        self.request = request
        self.sender = Sender(
            client, request.processor, request.params, resumable_above=request.resumable_above
        )
        self.outcomes = [Outcome(item) for item in items_of(files, request.urls)]
        self.changed = threading.Condition()
        self.todo: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    def run(self, bars: Bars, stop: threading.Event) -> None:
        """Until every file is done, or, after `stop`, until none is uploading or downloading
        any more (those stop at their next chunk; files not started are not)."""
        for outcome in self.outcomes:
            self.todo.put(outcome)
        for _ in range(min(MAX_AT_ONCE, len(self.outcomes))):
            threading.Thread(target=self._work, args=(bars, stop), daemon=True).start()
        with self.changed:
            while True:
                if stop.is_set():
                    for outcome in self.outcomes:
                        if outcome.stage == "waiting":  # its thread may be stuck following
                            outcome.stage, outcome.stopped = "done", "upload"
                busy = (
                    ("upload", "download")
                    if stop.is_set()
                    else ("waiting", "upload", "follow", "download")
                )
                if not any(o.stage in busy for o in self.outcomes):
                    return
                self.changed.wait(0.1)

    def _stage(self, outcome: Outcome, stage: str) -> None:
        with self.changed:
            outcome.stage = stage
            self.changed.notify_all()

    def _work(self, bars: Bars, stop: threading.Event) -> None:
        while True:
            try:
                outcome = self.todo.get_nowait()
            except queue.Empty:
                return
            with self.changed:
                if outcome.stage != "waiting":
                    continue  # given up on at Ctrl+C
                outcome.stage = "upload"
            try:
                self._carry(outcome, bars, stop)
            except Exception as exc:
                from filejob.client.retry import transient

                outcome.error = f"{outcome.label}: {self._problem(exc)}"
                if outcome.item.resumable and outcome.job is None and transient(exc):
                    outcome.error += "; the same command resumes the upload"
            self._stage(outcome, "done")

    def _problem(self, exc: Exception) -> str:
        import httpx

        if isinstance(exc, httpx.HTTPError):
            return network_problem(exc, self.client.server)
        return str(exc)

    def _carry(self, outcome: Outcome, bars: Bars, stop: threading.Event) -> None:
        from filejob.client.errors import Aborted

        item, request = outcome.item, self.request
        name = item.file.name if item.file is not None else str(item.url)
        size = item.file.stat().st_size if item.file is not None else None
        upload = bars.add(f"↑ {name}", size) if item.file is not None else None
        try:
            job = self.sender.send(item, lambda n: bars.update(upload, completed=n), stop)
        except Aborted:
            outcome.stopped = "upload"
            return
        outcome.job = job
        if not request.wait:
            return
        self._stage(outcome, "follow")
        # The processing bar shows how much of the input is done (the job's progress).
        size = job["input"]["size"]
        running = bars.add(f"⚙ {name} {job['id'][:8]}", size)
        for event in self.client.events(job["id"]):
            outcome.job = job = merge(job, event)
            bars.update(running, completed=job.get("progress", 0.0) * size)
            if stop.is_set():
                outcome.stopped = "follow"
                return
        if job["status"] != "succeeded":
            error = job.get("error") or {}
            outcome.error = f"{outcome.label}: job {job['id']} {job['status']}" + (
                f": {error.get('message')} ({error.get('code')})" if error else ""
            )
            return
        if request.places is not None:
            self._stage(outcome, "download")
            self._download(outcome, job, bars, stop, request.places)

    def _download(
        self, outcome: Outcome, job: dict[str, Any], bars: Bars, stop: threading.Event,
        places: Destinations,
    ) -> None:  # fmt: skip
        from filejob.client.errors import Aborted

        try:
            dest = places.claim(job["result"]["filename"])
        except DestinationExists as exc:
            outcome.error = f"{outcome.label}: not downloaded: {exc}"
            return
        down = bars.add(f"↓ {dest.name}", job["result"]["size"])
        try:
            outcome.output = self.client.download(
                job, dest, progress=lambda n: bars.advance(down, n), abort=stop
            )
        except Aborted:
            outcome.stopped, outcome.output = "download", dest


def _report(outcomes: list[Outcome], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([o.document() for o in outcomes], indent=2))
        return
    for o in outcomes:
        if o.job is not None:
            where = f"\t{o.output}" if o.output and not o.stopped else ""
            typer.echo(f"{o.job['id']}\t{o.job['status']}\t{o.label}{where}")


def _report_interruption(outcomes: list[Outcome]) -> None:
    from filejob.client.api import FINAL

    for o in outcomes:
        if o.stopped == "upload" and o.item.resumable:
            sent = f" ({human_size(o.item.sent)} sent by this run)" if o.item.sent else ""
            typer.echo(
                f"filejob: paused the upload of {o.label}{sent}; the same command resumes it",
                err=True,
            )
        elif o.stopped == "upload":
            typer.echo(f"filejob: aborted the upload of {o.label}: no job was created", err=True)
        elif o.stopped == "download" and o.job is not None:
            typer.echo(
                f"filejob: the download of {o.output} was interrupted; "
                f"`filejob download {o.job['id']} -o {o.output}` resumes it",
                err=True,
            )
    running = [(o.job["id"], o.label) for o in outcomes if o.job and o.job["status"] not in FINAL]
    for line in detach_lines(running):
        typer.echo(line if line.startswith(" ") else f"filejob: {line}", err=True)


def submit(
    files: list[Path] = typer.Argument(
        None, exists=True, dir_okay=False, readable=True, show_default=False, metavar="FILES"
    ),
    processor: str = typer.Option(..., "--processor", "-p", help="Processor name."),
    param: list[str] = typer.Option([], "--param", "-P", help="Processor param, key=value."),
    urls: list[str] = typer.Option(
        [],
        "--url",
        metavar="URL",
        help="A file for the server to fetch, one job each (repeatable, with or without FILES).",
    ),
    wait: bool = typer.Option(False, "--wait", "-w", help="Follow the jobs to their end."),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Download results here: a file, or a directory (one that exists, ends with /, "
        "or is given for several files); implies --wait.",
    ),
    clobber: bool = typer.Option(False, "--clobber", help="Overwrite existing files."),
    resumable_above: str = typer.Option(
        "64MiB",
        "--resumable-above",
        metavar="SIZE",
        help="Send larger files as resumable (tus) uploads, which survive network cuts and "
        "are resumed by the same command after Ctrl+C (bytes, or 512KiB, 64MiB, 2GiB).",
    ),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Upload FILES (or --url URLs), one job each, concurrently; --wait follows them,
    --output downloads."""
    from filejob.client.preflight import Refused, check

    files = files or []
    if not files and not urls:
        raise fail("give FILES to upload, or --url URL for the server to fetch", USAGE)
    params = parse_params(param)
    threshold = parse_size(resumable_above, "--resumable-above")
    places = None
    if output is not None:
        into_dir = len(files) + len(urls) > 1 or output.endswith("/") or Path(output).is_dir()
        places = Destinations(Path(output), into_dir=into_dir, clobber=clobber)
        try:
            places.check_known()
        except NotADirectory as exc:  # several files, or -o DIR/, given a file's name
            raise fail(f"{exc}; nothing was uploaded", USAGE) from None
        except DestinationExists as exc:
            raise fail(f"{exc}; nothing was uploaded") from None
    client = connect(server, api_key)
    try:
        call(lambda: check(client, processor, files), client)
    except Refused as exc:
        client.close()
        raise fail(f"{exc}; nothing was uploaded") from None
    request = Request(processor, params, wait or places is not None, places, threshold, urls)
    run = Run(client, request, files)
    with Interrupts() as interrupts, bars(stdout_is_terminal() and not as_json) as shown:
        run.run(shown, interrupts.stop)
    outcomes = list(run.outcomes)
    _report(outcomes, as_json)
    errors = [o.error for o in outcomes if o.error]
    for error in errors:
        typer.echo(f"filejob: {error}", err=True)
    if interrupts.stop.is_set():
        _report_interruption(outcomes)  # threads left following keep the client: not closed
        raise typer.Exit(INTERRUPTED)
    client.close()
    if errors:
        raise typer.Exit(1)


def parse_params(pairs: list[str]) -> dict[str, Any]:
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
