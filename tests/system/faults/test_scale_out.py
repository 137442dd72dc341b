"""Scaled out for real: two `filejob serve` and two `filejob worker` processes on one
PostgreSQL and one S3 store (SeaweedFS). 40 jobs go to the two API servers in turn; one worker
is SIGKILLed while it runs jobs, and one API server is SIGKILLed too. Every accepted job must
still end `succeeded`, with the sha256 of a reference run, seen from the surviving server, and
a job's live events, watched from the other server than the one that accepted it, follow it
to the end."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from filejob.client.api import FilejobClient
from filejob.db.engine import conninfo
from filejob.processors.registry import ProcessorRegistry, builtin_processors
from tests.support.harness import reference_sha256
from tests.support.jobs import jobs_by_id, submit_bytes
from tests.support.servers import kill, start_server, start_worker, stop_server
from tests.support.services import postgres_database, s3_settings
from tests.support.wait import wait_until

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
        start_server(tmp_path / f"api{n}", tmp_path / f"api{n}.log", cluster_env) for n in range(2)
    ]
    workers = [start_worker(cluster_env, tmp_path / f"worker{n}.log") for n in range(2)]
    processes: list[subprocess.Popen[bytes]] = [process for process, _ in servers] + workers
    clients = [FilejobClient(url) for _, url in servers]
    try:
        accepted: dict[str, int] = {}
        for i, (name, params, data) in enumerate(items):
            job = submit_bytes(clients[i % 2], data, name, params, filename="input")
            accepted[job["id"]] = i

        # Live events of the last job (accepted by server 0, run by some worker), watched
        # from server 1 while everything else happens.
        watched = list(accepted)[-2]
        seen: list[str] = []
        watcher = threading.Thread(target=watch_events, args=(servers[1][1], watched, seen))
        watcher.start()

        victim = workers[0]
        # Each worker runs at most 2 (and holds a third while one settles): with 4 running,
        # the victim has at least one, most often two, so that a job of its own is still
        # running when it is killed a moment later (with 3, it once had finished them all).
        wait_until(lambda: doing(cluster_env["FILEJOB_DATABASE_URL"]) >= 4, timeout=60)
        kill(victim)  # mid-job: its running jobs must be rescued by the other worker
        kill(servers[0][0])  # the jobs it accepted live in PostgreSQL and S3, not in it

        survivor = clients[1]

        def all_final() -> bool:
            jobs = jobs_by_id(survivor)
            return all(jobs[j]["status"] in ("succeeded", "failed") for j in accepted)

        wait_until(all_final, timeout=240)
        watcher.join(timeout=60)
        assert seen and seen[0] in ("queued", "running") and seen[-1] == "succeeded", seen
        final = jobs_by_id(survivor)
        assert {final[j]["status"] for j in accepted} == {"succeeded"}
        assert any(final[j]["attempts"] > 1 for j in accepted), "no job was running on the victim"
        for job_id, i in accepted.items():
            assert final[job_id]["result"]["sha256"] == expected[i]
            # The client checks the download against the job's sha256 (ApiError if not).
            body = survivor.download(final[job_id], tmp_path / "result").read_bytes()
            assert hashlib.sha256(body).hexdigest() == expected[i]
    finally:
        for client in clients:
            client.close()
        for process in processes:
            stop_server(process)  # SIGTERM, then SIGKILL if it lingers; workers alike
