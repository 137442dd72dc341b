"""Throughput of CPU-bound jobs with 1 and with 2 `filejob worker` processes, in one run.

Run: `.venv/bin/python bench/workers.py` (about a minute). Starts a SeaweedFS S3 store and a
fresh PostgreSQL database, one `filejob serve` (FILEJOB_EXECUTOR=procrastinate), then for each
round the given number of `filejob worker --concurrency 1` processes. Each round submits
`JOBS` jobs at once (level-19 zstd of 1 MiB of text: CPU-bound, ~0.2 s each on one core) and
times the first upload to the last `succeeded`. One worker is the baseline of the ratio; on a
2-core machine the API server, PostgreSQL and SeaweedFS share the cores with the workers, so 2
workers cannot quite double it.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from run import filejob_command, free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' service helpers: a PostgreSQL database, SeaweedFS
from tests.support.services import postgres_database, s3_settings, seaweedfs  # noqa: E402

JOBS = 32
PARAMS = '{"format": "zstd", "level": 19}'


def text(seed: int, size: int = 1024 * 1024) -> bytes:
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(5000)]
    return " ".join(rng.choice(words) for _ in range(size // 12)).encode()[:size]


def round_with(workers: int, env: dict[str, str], url: str, tmp: Path) -> float:
    """Jobs per second with `workers` worker processes."""
    procs = []
    for n in range(workers):
        with (tmp / f"worker-{workers}-{n}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [*filejob_command(), "worker", "--concurrency", "1"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    inputs = [text(seed) for seed in range(4)]
    try:
        time.sleep(2)  # the workers connect and register
        with httpx.Client(base_url=url, timeout=60) as client:
            start = time.perf_counter()
            ids = [
                client.post(
                    "/v1/jobs",
                    data={"processor": "compress", "params": PARAMS},
                    files={"file": ("t.txt", inputs[n % 4])},
                ).json()["id"]
                for n in range(JOBS)
            ]
            pending = set(ids)
            while pending:
                time.sleep(0.02)
                for job_id in list(pending):
                    status = client.get(f"/v1/jobs/{job_id}").json()["status"]
                    assert status in ("queued", "running", "succeeded"), status
                    if status == "succeeded":
                        pending.discard(job_id)
            return JOBS / (time.perf_counter() - start)
    finally:
        for proc in procs:
            proc.terminate()  # SIGTERM to this PID: a graceful stop
            proc.wait(timeout=40)


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILEJOB_")}
    env.update(FILEJOB_LOG_LEVEL="warning", FILEJOB_MIN_FREE_BYTES="0")
    env.update(FILEJOB_EXECUTOR="procrastinate")
    with tempfile.TemporaryDirectory(prefix="filejob-workers-") as tmp:
        weed_dir = Path(tmp) / "weed"
        weed_dir.mkdir()
        with seaweedfs(weed_dir) as endpoint, postgres_database() as database_url:
            env["FILEJOB_DATA_DIR"] = f"{tmp}/data"
            env["FILEJOB_DATABASE_URL"] = database_url
            for name, value in s3_settings(endpoint).items():
                env[f"FILEJOB_{name.upper()}"] = value
            port = free_port()
            argv = [*filejob_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
            server = start_server("filejob", argv, env, port, Path(tmp), "/healthz")
            try:
                rates = {n: round_with(n, env, server.url(""), Path(tmp)) for n in (1, 2)}
            finally:
                stop_server(server)
    print(f"CPU-bound jobs ({JOBS} jobs, level-19 zstd of 1 MiB text), {os.cpu_count()} cores")
    print(f"{'workers':>8}{'jobs/s':>9}{'ratio':>7}")
    for n, rate in rates.items():
        print(f"{n:>8}{rate:9.2f}{rate / rates[1]:7.2f}")


if __name__ == "__main__":
    main()
