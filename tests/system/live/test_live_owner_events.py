"""GET /v1/events from real servers: one connection follows many jobs as they change, whichever
process changes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from filejob.client.api import FilejobClient
from tests.support.jobs import submit_bytes
from tests.support.servers import LiveServer, start_server, start_worker, stop_server
from tests.support.services import postgres_database, s3_settings

JOBS = 7  # more than a browser's 6 connections per server


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The events of a text/event-stream, as they arrive (comments and `retry` skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
            continue
        if "event" in fields:
            yield {"id": fields["id"], "event": fields["event"], "data": json.loads(fields["data"])}
        fields = {}


def follow_jobs(url: str, api: FilejobClient) -> dict[str, list[str]]:
    """Open the stream, then submit `JOBS` jobs; each job's statuses as the stream told them,
    once every job has succeeded."""
    statuses: dict[str, list[str]] = {}
    with (
        httpx.Client(base_url=url, timeout=30) as client,
        client.stream("GET", "/v1/events") as response,
    ):
        assert response.status_code == 200
        stream = events(response.iter_lines())
        assert next(stream)["event"] == "ready"  # sent at once, before anything changed
        for n in range(JOBS):
            job = submit_bytes(api, f"job {n}".encode() * 1000, "checksum", {}, filename="in")
            statuses[job["id"]] = []
        for event in stream:
            data = event["data"]
            if event["event"] == "status" and data["id"] in statuses:
                statuses[data["id"]].append(data["status"])
            if all(s and s[-1] == "succeeded" for s in statuses.values()):
                return statuses
    raise AssertionError(f"the stream ended: {statuses}")


def test_one_connection_follows_seven_jobs(live: LiveServer) -> None:
    with live.api() as api:
        statuses = follow_jobs(live.url, api)
    assert len(statuses) == JOBS


def test_a_workers_changes_reach_the_stream(tmp_path: Path, seaweedfs: str) -> None:
    """The jobs run in a `filejob worker` process; the stream is served by `filejob serve`."""
    with postgres_database() as database_url:
        env = {
            "FILEJOB_DATABASE_URL": database_url,
            "FILEJOB_EXECUTOR": "procrastinate",
            "FILEJOB_SHUTDOWN_GRACE": "1",
            **{f"FILEJOB_{k.upper()}": v for k, v in s3_settings(seaweedfs).items()},
        }
        server, url = start_server(tmp_path / "api", tmp_path / "api.log", env)
        worker = start_worker(env, tmp_path / "worker.log")
        try:
            with FilejobClient(url) as api:
                statuses = follow_jobs(url, api)
        finally:
            stop_server(worker)
            stop_server(server)
    # `succeeded` is the worker's write: it could only come from another process.
    assert all(s[-1] == "succeeded" for s in statuses.values())
