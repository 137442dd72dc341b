"""Scaled out for real: two `filejob serve` and two `filejob worker` processes on one
PostgreSQL and one S3 store (SeaweedFS). 40 jobs go to the two API servers in turn; one worker
is SIGKILLed while it runs jobs, and one API server is SIGKILLed too. Every accepted job must
still end `succeeded`, with the sha256 of a reference run, seen from the surviving server, and
a job's live events, watched from the other server than the one that accepted it, follow it
to the end."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from filejob.db.engine import conninfo
from filejob.processors.registry import ProcessorRegistry, builtin_processors
from tests.services import postgres_database, s3_settings
from tests.system.faults.test_sigkill import kill, post, reference_sha256, statuses, wait_for
from tests.system.live.conftest import FILEJOB, start_server, stop_server

MiB = 1024 * 1024
JOBS = 40


def text(seed: int, size: int = MiB) -> bytes:
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(5000)]
    return " ".join(rng.choice(words) for _ in range(size // 12)).encode()[:size]


@pytest.fixture
def cluster_env(seaweedfs: str) -> Iterator[dict[str, str]]:
    with postgres_database() as url:
        yield {
            "FILEJOB_DATABASE_URL": url,
            "FILEJOB_EXECUTOR": "procrastinate",
            "FILEJOB_STALLED_AFTER": "4",  # rescue within 4 s of a worker's death
            "FILEJOB_MAX_ATTEMPTS": "5",
            "FILEJOB_SHUTDOWN_GRACE": "1",
            **{f"FILEJOB_{k.upper()}": v for k, v in s3_settings(seaweedfs).items()},
        }


def start_worker(
    env: dict[str, str], log: Path, *, concurrency: int = 2, start_new_session: bool = False
) -> subprocess.Popen[bytes]:
    """`filejob worker`; `start_new_session`: in a process group of its own, as a service
    manager would start it."""
    environment = {**os.environ, "FILEJOB_FSYNC": "false", "FILEJOB_LOG_LEVEL": "info", **env}
    with log.open("ab") as out:
        return subprocess.Popen(
            [FILEJOB, "worker", "--concurrency", str(concurrency)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=start_new_session,
        )


def watch_events(url: str, job_id: str, seen: list[str]) -> None:
    """The `status` of every event of the job's stream, until it ends."""
    with httpx.stream("GET", f"{url}/v1/jobs/{job_id}/events", timeout=240) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: "))["status"])


def doing(database_url: str) -> int:
    """Queue entries being run now, by any worker."""
    with psycopg.connect(conninfo(database_url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.timeout(300)  # a rescue, 40 CPU-bound jobs on 2 cores, SeaweedFS: ~25-70 s
def test_killing_a_worker_and_an_api_server_loses_no_job(
    tmp_path: Path, cluster_env: dict[str, str]
) -> None:
    registry = ProcessorRegistry(builtin_processors())
    # Level-19 zstd of text: a fraction of a second of CPU per job. Four inputs, ten jobs each.
    inputs = [("compress", {"format": "zstd", "level": 19}, text(seed)) for seed in range(4)]
    references = [reference_sha256(registry, *item) for item in inputs]
    items = [inputs[i % 4] for i in range(JOBS)]
    expected = {i: references[i % 4] for i in range(JOBS)}

    servers = [
        start_server(tmp_path / f"api{n}", tmp_path / f"api{n}.log", **cluster_env)
        for n in range(2)
    ]
    workers = [start_worker(cluster_env, tmp_path / f"worker{n}.log") for n in range(2)]
    processes: list[Any] = [process for process, _ in servers] + workers
    try:
        accepted: dict[str, int] = {}
        for i, item in enumerate(items):
            url = servers[i % 2][1]
            job_id = post(url, *item)
            assert job_id is not None
            accepted[job_id] = i

        # Live events of the last job (accepted by server 0, run by some worker), watched
        # from server 1 while everything else happens.
        watched = list(accepted)[-2]
        seen: list[str] = []
        watcher = threading.Thread(target=watch_events, args=(servers[1][1], watched, seen))
        watcher.start()

        victim = workers[0]
        # Each worker runs at most 2: with 3 running, both are busy, the victim included.
        wait_for(lambda: doing(cluster_env["FILEJOB_DATABASE_URL"]) >= 3, 60)
        kill(victim)  # mid-job: its running jobs must be rescued by the other worker
        kill(servers[0][0])  # the jobs it accepted live in PostgreSQL and S3, not in it

        survivor = servers[1][1]

        def all_final() -> bool:
            seen = statuses(survivor)
            return all(seen[j]["status"] in ("succeeded", "failed") for j in accepted)

        wait_for(all_final, 240)
        watcher.join(timeout=60)
        assert seen and seen[0] in ("queued", "running") and seen[-1] == "succeeded", seen
        seen = statuses(survivor)
        assert {seen[j]["status"] for j in accepted} == {"succeeded"}
        assert any(seen[j]["attempts"] > 1 for j in accepted), "no job was running on the victim"
        with httpx.Client(base_url=survivor, timeout=60) as client:
            for job_id, i in accepted.items():
                assert seen[job_id]["result"]["sha256"] == expected[i]
                body = client.get(f"/v1/jobs/{job_id}/result").content
                assert hashlib.sha256(body).hexdigest() == expected[i]
    finally:
        for process in processes:
            stop_server(process)  # SIGTERM, then SIGKILL if it lingers; workers alike
