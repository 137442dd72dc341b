"""/metrics on both profiles: HTTP, bytes, job outcomes and the database-wide gauges."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from fastapi import FastAPI
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.jobs import submit, wait_for_status
from tests.support.processors import GATES


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def job_metrics_text(app: FastAPI) -> str:
    """Job outcomes are counted by the process that ran them: this server, or the worker."""
    worker = getattr(app.state, "test_worker", None)
    registry = worker.registry if worker is not None else app.state.services.metrics.registry
    return generate_latest(registry).decode()


async def test_metrics_count_requests_bytes_and_jobs(
    app: FastAPI, client: httpx.AsyncClient, run_until_idle: Any
) -> None:
    ok = [(await submit(client, b"a" * n, "checksum")).json() for n in (100, 2000)]
    failed = (await submit(client, b"zz", "slow", params={"steps": 1, "fail": True})).json()
    await run_until_idle()
    done = [await wait_for_status(client, j["id"], "succeeded") for j in ok]
    await wait_for_status(client, failed["id"], "failed")
    downloaded = await client.get(f"/v1/jobs/{done[0]['id']}/result")
    assert downloaded.status_code == 200

    GATES["metrics-running"] = threading.Event()
    held = (await submit(client, b"h", "slow", params={"gate": "metrics-running"})).json()
    await wait_for_status(client, held["id"], "running")

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    requests = "filejob_http_requests_total"
    assert value(found, requests, method="POST", route="/v1/jobs", status="202") == 4
    route = "/v1/jobs/{job_id}/result"
    assert value(found, requests, method="GET", route=route, status="200") == 1
    assert value(found, "filejob_uploaded_bytes_total") == 100 + 2000 + 2 + 1
    assert value(found, "filejob_downloaded_bytes_total") == len(downloaded.content)
    assert value(found, "filejob_jobs", status="running") == 1
    assert value(found, "filejob_jobs", status="queued") == 0
    results = sum(j["result"]["size"] for j in done)
    # Inputs and results kept: the failed job keeps its input until retention.
    assert value(found, "filejob_storage_bytes") == 100 + 2000 + 2 + 1 + results
    assert held["id"] not in response.text  # routes are templates, never paths with ids

    jobs = samples(job_metrics_text(app))
    finished = "filejob_jobs_finished_total"
    assert value(jobs, finished, processor="checksum", status="succeeded") == 2
    assert value(jobs, finished, processor="slow", status="failed") == 1
    assert value(jobs, "filejob_job_duration_seconds_count", processor="checksum") == 2
    assert value(jobs, "filejob_job_queue_wait_seconds_count", processor="checksum") == 2
    GATES["metrics-running"].set()
