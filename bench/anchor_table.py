"""The anchors' output: one markdown table of medians [min-max] over rounds, the ratios the
issue's goals are stated in, and each goal as met or not met by this run's figures."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

Results = dict[str, dict[str, list[float]]]  # system -> figure key -> one value per round

COLUMNS = ("filejob", "celery", "arq", "bare")
HEADS = (
    "filejob",
    "FastAPI + Celery (Redis, prefork x2 unless the row says)",
    "FastAPI + arq",
    "bare floor (the row says which)",
)
QUEUES = {"filejob": "filejob", "celery": "celery", "arq": "arq"}
POLL = {**QUEUES, "bare": "sqlite"}
CLUSTER1 = {"filejob": "filejob-pg1", "celery": "celery-c1"}
CLUSTER2 = {"filejob": "filejob-pg2", "celery": "celery"}
BIG_DOWN = {"filejob": "filejob", "celery": "celery", "bare": "nginx"}
BIG_UP = {"filejob": "filejob", "bare": "bare"}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    decimals: int
    sources: dict[str, str] = field(default_factory=lambda: QUEUES)  # column -> system


def rows(jobs: int, poller: str) -> list[Row]:
    heavy = "2 CPU-heavy jobs (gzip -9 of 1 MiB) running all along"
    cluster = "cluster (PostgreSQL + procrastinate, local folder) small `checksum` jobs/s"
    return [
        Row("jobs", f"small `checksum` jobs/s ({jobs} x 1 KiB, first submit → last final)", 0),
        Row("cpu_job", "server CPU per small job, ms (incl. its polls)", 2),
        Row("gzip_jobs", f"small `compress` (gzip, level 6) jobs/s ({jobs} x 1 KiB)", 0),
        Row("cpu_gzip_job", "server CPU per small gzip job, ms", 2),
        Row("submits", "submits/s (1 KiB multipart)", 0),
        Row("cpu_submit", "server CPU per submit, ms (incl. jobs run meanwhile)", 2),
        Row(
            "polls", f"poll `GET /v1/jobs/{{id}}` req/s ({poller}, 16 conns; bare: SQLite)", 0, POLL
        ),
        Row("poll_p99", "poll p99, ms", 1, POLL),
        Row("cpu_poll", "server CPU per poll, ms", 3, POLL),
        Row("etag_polls", "conditional poll (If-None-Match → 304) req/s", 0),
        Row("cpu_etag_poll", "server CPU per conditional poll, ms", 3),
        Row("busy_p99", f"poll p99 with {heavy}, ms", 1),
        Row("downloads", "small result downloads/s", 0),
        Row("cpu_download", "server CPU per download, ms", 2),
        Row("jobs", f"{cluster}, 1 worker process (Celery: --concurrency 1)", 0, CLUSTER1),
        Row("cpu_job", "cluster: server CPU per small job, ms, 1 worker process", 2, CLUSTER1),
        Row("jobs", f"{cluster}, 2 worker processes (Celery: --concurrency 2)", 0, CLUSTER2),
        Row("cpu_job", "cluster: server CPU per small job, ms, 2 worker processes", 2, CLUSTER2),
        Row(
            "big_down",
            "1 GiB download, MiB/s (Celery: FileResponse; bare: nginx sendfile)",
            0,
            BIG_DOWN,
        ),
        Row("cpu_big_down", "server CPU per GiB downloaded, s", 2, BIG_DOWN),
        Row("big_up", "1 GiB upload, MiB/s (curl -F, fsync; bare: bench/bare_app.py)", 0, BIG_UP),
        Row("cpu_big_up", "server CPU per GiB uploaded, s (API process)", 2, BIG_UP),
        Row("rss_growth", "server RSS growth during a 1 GiB upload, MiB", 0, BIG_UP),
        Row("wchar", "bytes written per byte uploaded (wchar)", 3, BIG_UP),
    ]


def median(results: Results, system: str, key: str) -> float | None:
    values = results.get(system, {}).get(key)
    return statistics.median(values) if values else None


def cell(values: list[float] | None, decimals: int) -> str:
    if not values:
        return ""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{decimals}f}"
    return f"{med:,.{decimals}f} [{min(values):,.{decimals}f}-{max(values):,.{decimals}f}]"


def _ratio(results: Results, row: Row, column: str) -> str:
    sources = row.sources
    ours = median(results, sources["filejob"], row.key)
    theirs = median(results, sources.get(column, ""), row.key)
    return f"{ours / theirs:.2f}x" if ours is not None and theirs else ""


def table(results: Results, jobs: int, poller: str) -> str:
    lines = [
        f"| figure | {' | '.join(HEADS)} | filejob / Celery | filejob / bare |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows(jobs, poller):
        sources = row.sources
        cells = [
            cell(results.get(sources.get(c, ""), {}).get(row.key), row.decimals) for c in COLUMNS
        ]
        if not any(cells):
            continue  # a part of the plan this run left out
        ratios = f"{_ratio(results, row, 'celery')} | {_ratio(results, row, 'bare')}"
        lines.append(f"| {row.label} | {' | '.join(cells)} | {ratios} |")
    return "\n".join(lines)
