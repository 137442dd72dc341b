"""`filejob cancel`, `delete` and `link`: acting on jobs that exist.

`cancel ID...` stops queued or running jobs and keeps them (POST /v1/jobs/{id}/cancel); a job
already final is left alone and said so. `delete ID...` removes jobs with their files: a
queued or running one is cancelled first, then deleted. Both go through every id and exit 1
if any was not done, as `gh run cancel` does for a run that has completed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from filejob.client.options import (
    API_KEY,
    JOB_ID,
    JOB_IDS,
    JSON_OUT,
    SERVER,
    USAGE,
    call,
    connect,
    echo_json,
    fail,
    network_problem,
)
from filejob.client.output import parse_seconds

if TYPE_CHECKING:
    from filejob.client.api import FilejobClient


def _each(
    client: FilejobClient, ids: list[str], act: Callable[[str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """`act` on every id; a refusal or a network failure is that id's `error`."""
    import httpx

    from filejob.client.errors import ApiError

    done = []
    for job_id in ids:
        try:
            done.append({"id": job_id, **act(job_id), "error": None})
        except ApiError as exc:
            error = {"code": exc.code, "detail": exc.detail, "status": exc.status}
            done.append({"id": job_id, "error": error, **_refusal(exc)})
        except httpx.HTTPError as exc:
            error = {"code": "network", "detail": network_problem(exc, client.server)}
            done.append({"id": job_id, "error": error})
    return done


def _refusal(exc: Any) -> dict[str, Any]:
    """What a refusal says of the job: a final job's status."""
    status = exc.problem.get("job_status") if exc.code == "job_final" else None
    return {"status": status} if status else {}


def _finish(results: list[dict[str, Any]], as_json: bool, key: str, verb: str) -> None:
    if as_json:
        echo_json(results)
    for r in results:
        if r.get(key):
            if not as_json:
                typer.echo(f"{verb} {r['id']}")
        elif r["error"]["code"] == "job_final":
            typer.echo(f"filejob: {r['id']} already {r['status']}; nothing to cancel", err=True)
        else:
            error = r["error"]
            typer.echo(f"filejob: {r['id']}: {error['detail']} ({error['code']})", err=True)
    if any(not r.get(key) for r in results):
        raise typer.Exit(1)


def cancel(
    job_ids: list[str] = JOB_IDS,
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Cancel queued or running jobs; they are kept, `cancelled` (exit 1 if any was final)."""

    def one(job_id: str) -> dict[str, Any]:
        job = client.cancel(job_id)
        return {"cancelled": True, "status": job["status"]}

    with connect(server, api_key) as client:
        results = _each(client, job_ids, one)
    for r in results:
        r.setdefault("cancelled", False)
    _finish(results, as_json, "cancelled", "cancelled")


def delete(
    job_ids: list[str] = JOB_IDS,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask (needed without a terminal)."),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Delete jobs and their files for good; a queued or running one is cancelled first."""
    if not yes:
        if not sys.stdin.isatty():
            raise fail("delete removes jobs for good: confirm with --yes", USAGE)
        what = f"{len(job_ids)} jobs" if len(job_ids) > 1 else f"job {job_ids[0]}"
        if not _confirm(f"Delete {what} and their files?"):
            raise fail("nothing deleted")

    def one(job_id: str) -> dict[str, Any]:
        from filejob.client.errors import ApiError

        cancelled = True
        try:
            client.cancel(job_id)  # final from here on: DELETE then deletes it
        except ApiError as exc:
            if exc.code != "job_final":
                raise
            cancelled = False
        client.delete(job_id)
        return {"deleted": True, "cancelled_first": cancelled}

    with connect(server, api_key) as client:
        results = _each(client, job_ids, one)
    for r in results:
        r.setdefault("deleted", False)
    _finish(results, as_json, "deleted", "deleted")


def _confirm(question: str) -> bool:
    """Ask on stderr, read the answer from the terminal; no is the default. (click's own
    prompt with err=True still writes a space to stdout, which belongs to --json.)"""
    typer.echo(f"{question} [y/N]: ", err=True, nl=False)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def link(
    job_id: str = JOB_ID,
    ttl: str | None = typer.Option(
        None, "--ttl", help="How long it works: seconds, or 10m, 2h, 7d (the server caps it)."
    ),
    server: str | None = SERVER,
    api_key: str | None = API_KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Print a signed link to the job's result: it downloads without an API key, for a while."""
    seconds = parse_seconds(ttl) if ttl else None
    with connect(server, api_key) as client:
        made = call(lambda: client.result_link(job_id, seconds), client)
    if as_json:
        echo_json({"id": job_id, **made})
    else:
        typer.echo(made["url"])
