"""End-to-end latency of a small job in each deployment profile, measured in one run.

Run: `.venv/bin/python bench/profiles.py` (about 30 s). Starts `filejob serve` on 127.0.0.1
twice: embedded (SQLite + local folder + in-process execution), then distributed (a fresh
PostgreSQL database on the local server + a SeaweedFS S3 store started for the run + one
`filejob worker` taking jobs from procrastinate's queue). Each time, one client submits
`JOBS` small `checksum` jobs one after another and polls each until it has succeeded, then
downloads the result. The embedded profile is the baseline of the ratios.
"""

from __future__ import annotations

import os
import statistics
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

JOBS = 60


def measure(env: dict[str, str], tmp: Path) -> tuple[list[float], list[float]]:
    subprocess.run([*filejob_command(), "db", "upgrade"], env=env, check=True, capture_output=True)
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = start_server("filejob", argv, env, port, tmp, "/healthz")
    worker = None
    if env.get("FILEJOB_EXECUTOR") == "procrastinate":
        with (tmp / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                [*filejob_command(), "worker", "--concurrency", "2"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    done, downloads = [], []
    try:
        with httpx.Client(base_url=server.url(""), timeout=30) as client:
            for n in range(JOBS + 5):
                start = time.perf_counter()
                job = client.post(
                    "/v1/jobs", data={"processor": "checksum"}, files={"file": ("a", b"x" * 1024)}
                ).json()
                while job["status"] != "succeeded":
                    time.sleep(0.002)
                    job = client.get(f"/v1/jobs/{job['id']}").json()
                finished = time.perf_counter()
                assert client.get(job["result"]["url"]).status_code == 200
                if n >= 5:  # the first few warm up pools and caches
                    done.append((finished - start) * 1000)
                    downloads.append((time.perf_counter() - finished) * 1000)
    finally:
        stop_server(server)
        if worker is not None:
            worker.terminate()  # SIGTERM to this PID: a graceful stop
            worker.wait(timeout=40)
    return done, downloads


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FILEJOB_")}
    base.update(FILEJOB_LOG_LEVEL="warning", FILEJOB_MIN_FREE_BYTES="0", FILEJOB_FSYNC="true")
    results = {}
    with tempfile.TemporaryDirectory(prefix="filejob-profiles-") as tmp:
        embedded = {**base, "FILEJOB_DATA_DIR": f"{tmp}/embedded"}
        results["embedded (SQLite + folder)"] = measure(embedded, Path(tmp))
        weed_dir = Path(tmp) / "weed"
        weed_dir.mkdir()
        with seaweedfs(weed_dir) as endpoint, postgres_database() as database_url:
            distributed = {**base, "FILEJOB_DATA_DIR": f"{tmp}/distributed"}
            distributed["FILEJOB_DATABASE_URL"] = database_url
            distributed["FILEJOB_EXECUTOR"] = "procrastinate"
            for name, value in s3_settings(endpoint).items():
                distributed[f"FILEJOB_{name.upper()}"] = value
            results["distributed (PG + S3 + worker)"] = measure(distributed, Path(tmp))

    baseline = statistics.median(next(iter(results.values()))[0])
    print(f"Small job end to end ({JOBS} sequential 1 KiB checksum jobs, one client)")
    print(f"{'':32}{'submit→succeeded p50':>22}{'p90':>8}{'ratio':>7}{'download p50':>14}")
    for label, (done, downloads) in results.items():
        p50, p90 = statistics.median(done), statistics.quantiles(done, n=10)[-1]
        print(
            f"{label:32}{p50:19.1f} ms{p90:8.1f}{p50 / baseline:7.2f}"
            f"{statistics.median(downloads):11.1f} ms"
        )


if __name__ == "__main__":
    main()
