"""Anchors: filejob side by side with the recipes its users would otherwise pick.

Run: `.venv/bin/python bench/anchors.py [--rounds 3] [--quick] [--big/--no-big]
[--cluster/--no-cluster]` (needs Redis on 127.0.0.1:6379, celery[redis] and arq in the venv;
wrk if installed; nginx and curl for the 1 GiB figures; the local PostgreSQL for the cluster
profile, skipped with the reason printed when it is not reachable). Prints one markdown table
and the issue's goals as met / not met, and writes both to `bench/out/anchors.md`.

Systems, each started here on 127.0.0.1 free ports under one temp dir (bench/anchor_systems.py):
filejob (`filejob serve`, embedded defaults, FILEJOB_FSYNC=true); `bench/anchors/celery_recipe.py`
(FastAPI + Celery, Redis db 9, prefork worker x2; db 11 with x1 for the cluster rows);
`bench/anchors/arq_recipe.py` (FastAPI + arq, Redis db 10, one worker);
`bench/anchors/sqlite_recipe.py` (one SQLite row read: the poll floor); with --cluster,
filejob on PostgreSQL + procrastinate with 1 and with 2 `filejob worker` processes
(bench/anchor_cluster.py); with --big, nginx (sendfile) and bench/bare_app.py
(bench/anchor_big.py). The recipes do `checksum`'s work (the upload fsynced to disk, a task
writing the digests as a fsynced JSON file) and `compress`'s with gzip (level 6, mtime 0, the
result fsynced), with status and result endpoints. Their Redis dbs are flushed before and
after, and a db holding keys this bench did not write is refused.

Per round, each figure is measured on every system that takes part in it, in turn (the order
rotates by round); the table gives medians and [min-max] over rounds. The clients
(bench/anchor_client.py) are raw asyncio HTTP/1.1 keep-alive connections:
- small jobs/s: 8 clients submit N 1 KiB files (`checksum`, or `compress` with gzip), then
  poll their jobs (a sweep every 20 ms) until all are final; first submit -> last final.
- submits/s: 8 clients, first submit -> last 202 (the jobs then finish before the next figure).
- polls: wrk, 2 threads x 16 connections, on one finished job (without wrk: 16 asyncio
  connections, closed loop); conditional polls send its ETag in If-None-Match (all 304s);
  busy polls run while two clients keep a CPU-heavy job each (gzip -9 of 1 MiB) running.
- downloads/s: 8 clients fetch the results of finished jobs.
- 1 GiB: curl downloads into /dev/null and multipart uploads (bench/anchor_big.py).
Server CPU per unit is user+system time, children included, of every process the system runs
(API, workers, their children, found with psutil), of the Redis server for the recipes and of
the database's backends for the cluster profile, before and after each figure, divided by the
count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anchor_big as big
import anchor_figures as fig
from anchor_client import CLIENTS, POLLER
from anchor_cluster import postgres_unreachable, start_cluster
from anchor_goals import goals
from anchor_systems import (
    BIG_DOWNLOADS,
    BIG_UPLOADS,
    BUSY_POLLS,
    DOWNLOADS,
    ETAG_POLLS,
    GZIP_JOBS,
    POLLS,
    QUEUE_STEPS,
    SMALL,
    SUBMITS,
    QueueRecipe,
    System,
    arq_worker,
    celery_worker,
    start_filejob,
    start_queue_recipe,
    start_sqlite,
)
from anchor_table import Results, table
from run import OUT


@dataclass
class Plan:
    jobs: int
    poll_seconds: float
    downloads: int
    rounds: int
    big: bool = True
    cluster: bool = True
    cluster_slots: int = 1  # jobs each `filejob worker` process runs at once
    load_start: float = field(default_factory=lambda: os.getloadavg()[0])  # others' load shows
    notes: list[str] = field(default_factory=list)  # what this run left out, and why
    big_file: Path | None = None
    scratch: Path | None = None

    def steps(self) -> list[tuple[str, Callable[[System], fig.Figures]]]:
        """(step, measure) in the order each round runs them."""
        return [
            (SMALL, lambda s: fig.small_jobs(s, self.jobs)),
            (GZIP_JOBS, lambda s: fig.gzip_jobs(s, self.jobs)),
            (SUBMITS, lambda s: fig.submits(s, self.jobs)),
            (POLLS, lambda s: fig.poll(s, self.poll_seconds)),
            (ETAG_POLLS, lambda s: fig.etag_poll(s, self.poll_seconds)),
            (BUSY_POLLS, lambda s: fig.busy_poll(s, self.poll_seconds)),
            (DOWNLOADS, lambda s: fig.small_downloads(s, self.downloads)),
            (BIG_UPLOADS, self.big_upload),
            (BIG_DOWNLOADS, big.big_download),
        ]

    def big_upload(self, s: System) -> fig.Figures:
        assert self.big_file is not None and self.scratch is not None
        return big.big_upload(s, self.big_file, self.scratch)


def warm_up(s: System, plan: Plan) -> None:
    """First-request costs (imports, caches, worker and process start) stay out of the figures."""
    if SMALL in s.takes:
        fig.warm_jobs(s)
    if GZIP_JOBS in s.takes:
        fig.gzip_jobs(s, 2 * CLIENTS)
    if DOWNLOADS in s.takes:
        fig.small_downloads(s, 2 * CLIENTS)
    if POLLS in s.takes:
        fig.poll(s, 1)
    if BIG_DOWNLOADS in s.takes:
        big.big_download(s)
    if BIG_UPLOADS in s.takes and s.name == "bare":  # filejob's was warmed by its big result
        plan.big_upload(s)


class StepFailed(Exception):
    def __init__(self, system: str, step: str) -> None:
        super().__init__(f"{system}: {step} failed")
        self.system = system


def log_tails(tmp: Path, system: str, lines: int = 15) -> str:
    """The last lines of the logs of `system`'s processes (the temp dir goes with the run)."""
    tails = []
    for log in sorted(tmp.glob(f"{system}*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        tails.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(tails)


def measure(systems: list[System], plan: Plan) -> Results:
    results: Results = {s.name: {} for s in systems}
    for s in systems:
        try:
            warm_up(s, plan)
        except Exception as exc:
            raise StepFailed(s.name, "warm-up") from exc
    for round_no in range(plan.rounds):
        order = systems[round_no % len(systems) :] + systems[: round_no % len(systems)]
        for step, run_step in plan.steps():
            for s in order:
                if step not in s.takes:
                    continue
                try:
                    figures = run_step(s)
                except Exception as exc:
                    raise StepFailed(s.name, step) from exc
                for key, value in figures.items():
                    results[s.name].setdefault(key, []).append(value)
                shown = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
                print(f"  round {round_no + 1} {step:13} {s.name:11} {shown}", file=sys.stderr)
    return results


def header(plan: Plan, argv: list[str], wall: float) -> str:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    redis_version = redis.split()[2].removeprefix("v=") if redis else "?"
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    nginx = f", nginx {big.nginx_version()}" if plan.big else ""
    notes = [*plan.notes]
    if plan.cluster:
        notes.append(f"Cluster workers: `filejob worker --concurrency {plan.cluster_slots}` each")
    if plan.big:
        notes.append(
            "The 1 GiB file is os.urandom bytes; filejob serves it as a `compress` (zstd -1) "
            "job's result, nginx and FileResponse the file itself"
        )
    shown = "".join(f" {note}." for note in notes)
    return (
        f"`.venv/bin/python bench/anchors.py {' '.join(argv)}` on {stamp}, {wall:.0f} s wall; "
        f"{os.cpu_count()} CPUs ({cpu}); medians [min-max] of {plan.rounds} interleaved rounds; "
        f"polls by {POLLER}; celery {version('celery')}, arq {version('arq')}, "
        f"redis {redis_version}, uvicorn {version('uvicorn')}, fastapi {version('fastapi')}"
        f"{nginx}; load average {plan.load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end"
        f". Server CPU counts the API and worker process trees, for Celery and arq the "
        f"Redis server too, for the cluster profile its database's backends.{shown}"
    )


def start_all(tmp: Path, plan: Plan, systems: list[System]) -> None:
    """Start the systems into `systems` (so whatever started is stopped on failure)."""
    if plan.big and (reason := big.nginx_missing() or big.curl_missing()):
        plan.big = False
        plan.notes.append(f"1 GiB figures skipped: {reason}")
    if plan.big:
        plan.big_file, plan.scratch = big.make_big(tmp), big.make_scratch(tmp)
    if plan.cluster and (reason := postgres_unreachable()):
        plan.cluster = False
        plan.notes.append(f"cluster profile skipped: {reason}")
    filejob_takes = QUEUE_STEPS | {ETAG_POLLS, BUSY_POLLS}
    if plan.big:
        filejob_takes |= {BIG_UPLOADS, BIG_DOWNLOADS}
    systems.append(start_filejob(tmp, filejob_takes))
    celery = QueueRecipe("celery", "celery_recipe", 9, celery_worker(2), QUEUE_STEPS | {BUSY_POLLS})
    systems.append(start_queue_recipe(celery if not plan.big else _with_big(celery, plan), tmp))
    systems.append(start_queue_recipe(QueueRecipe("arq", "arq_recipe", 10, arq_worker()), tmp))
    systems.append(start_sqlite(tmp))
    if plan.cluster:
        single = QueueRecipe("celery-c1", "celery_recipe", 11, celery_worker(1), frozenset({SMALL}))
        systems.append(start_queue_recipe(single, tmp))
        systems += [start_cluster(tmp, n, plan.cluster_slots) for n in (1, 2)]
    if plan.big:
        assert plan.big_file is not None and plan.scratch is not None
        systems.append(big.start_nginx(tmp, plan.big_file))
        systems.append(big.start_bare_upload(tmp, plan.big_file))
        big.give_filejob_big(systems[0], plan.big_file, plan.scratch)


def _with_big(recipe: QueueRecipe, plan: Plan) -> QueueRecipe:
    return QueueRecipe(
        recipe.name, recipe.module, recipe.db, recipe.worker, recipe.takes, plan.big_file
    )


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so `finally` stops what was started


def parse_plan() -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer jobs, shorter poll runs")
    parser.add_argument(
        "--big",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the 1 GiB upload and download figures (default: on, off with --quick)",
    )
    parser.add_argument(
        "--cluster",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="filejob on PostgreSQL + procrastinate, 1 and 2 workers, beside Celery x1 and x2",
    )
    parser.add_argument(
        "--cluster-slots",
        type=int,
        default=1,
        help="`filejob worker --concurrency` of each cluster worker process (default 1: one job "
        "at a time, as a Celery prefork child)",
    )
    args = parser.parse_args()
    plan = Plan(jobs=200, poll_seconds=8, downloads=800, rounds=args.rounds)
    if args.quick:
        plan = Plan(jobs=80, poll_seconds=3, downloads=240, rounds=args.rounds)
    plan.big = (not args.quick) if args.big is None else args.big
    plan.cluster, plan.cluster_slots = args.cluster, args.cluster_slots
    if not plan.big:
        plan.notes.append("1 GiB figures not in this plan (--big adds them)")
    if not plan.cluster:
        plan.notes.append("cluster profile not in this plan (--no-cluster)")
    return plan


def main() -> None:
    plan = parse_plan()
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="filejob-anchors-"))
    systems: list[System] = []
    try:
        start_all(tmp, plan, systems)
        results = measure(systems, plan)
    except StepFailed as failed:
        print(log_tails(tmp, failed.system), file=sys.stderr)
        raise
    finally:
        for s in reversed(systems):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.monotonic() - started
    text = (
        f"{header(plan, sys.argv[1:], wall)}\n\n{table(results, plan.jobs, POLLER)}\n\n"
        f"{goals(results)}\n"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "anchors.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
