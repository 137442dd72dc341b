"""One figure of one system: its throughput and the server CPU per unit of work, from the CPU
of the system's processes before and after (`System.cpu`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import anchor_client as client
from anchor_client import CHECKSUM, CLIENTS, GZIP, JobKind
from anchor_systems import System

JOB_TIMEOUT = 120.0  # for any one figure
Figures = dict[str, float]
HEAVY = client.heavy_gzip()

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, JOB_TIMEOUT))


def per_unit_ms(cpu_s: float, count: int) -> float:
    return cpu_s / count * 1000


def small_jobs(s: System, n: int, kind: JobKind = CHECKSUM) -> Figures:
    """8 clients submit n small jobs and poll them until all have succeeded."""
    cpu0 = s.cpu()
    seconds, ids = run_async(client.jobs(s.port, n, kind, wait=True))
    cpu = s.cpu() - cpu0
    if kind is CHECKSUM:
        s.finished = ids  # polled and downloaded by the later figures
        return {"jobs": n / seconds, "cpu_job": per_unit_ms(cpu, n)}
    return {"gzip_jobs": n / seconds, "cpu_gzip_job": per_unit_ms(cpu, n)}


def gzip_jobs(s: System, n: int) -> Figures:
    return small_jobs(s, n, GZIP)


def submits(s: System, n: int) -> Figures:
    cpu0 = s.cpu()
    seconds, ids = run_async(client.jobs(s.port, n, CHECKSUM, wait=False))
    cpu = s.cpu() - cpu0
    run_async(client.finish(s.port, ids))  # quiet again before the next figure
    return {"submits": n / seconds, "cpu_submit": per_unit_ms(cpu, n)}


def poll(s: System, seconds: float) -> Figures:
    cpu0 = s.cpu()
    run = run_async(client.poll_load(s.port, s.path(), seconds))
    cpu = s.cpu() - cpu0
    return {"polls": run.rps, "poll_p99": run.p99_ms, "cpu_poll": per_unit_ms(cpu, run.count)}


def etag_poll(s: System, seconds: float) -> Figures:
    """Conditional polls: If-None-Match with the job's current ETag, so every answer is a 304."""
    tag = run_async(client.etag(s.port, s.path()))
    cpu0 = s.cpu()
    run = run_async(client.poll_load(s.port, s.path(), seconds, {"If-None-Match": tag}))
    cpu = s.cpu() - cpu0
    return {"etag_polls": run.rps, "cpu_etag_poll": per_unit_ms(cpu, run.count)}


def busy_poll(s: System, seconds: float) -> Figures:
    """Polls while two CPU-heavy jobs run all along (the CPU is theirs: only latency counts)."""
    run, done = run_async(client.polls_beside_jobs(s.port, s.path(), seconds, HEAVY))
    if not done:
        raise RuntimeError(f"{s.name}: no heavy job finished while polling")
    return {"busy_polls": run.rps, "busy_p99": run.p99_ms, "heavy_jobs": done}


def small_downloads(s: System, n: int) -> Figures:
    cpu0 = s.cpu()
    seconds = run_async(client.downloads(s.port, s.finished, n))
    cpu = s.cpu() - cpu0
    return {"downloads": n / seconds, "cpu_download": per_unit_ms(cpu, n)}


def warm_jobs(s: System) -> None:
    """First-request costs (imports, caches, worker start) stay out of the figures."""
    try:
        small_jobs(s, 2 * CLIENTS)
    except TimeoutError:
        raise RuntimeError(f"{s.name}: warm-up jobs not finished (see its worker)") from None
