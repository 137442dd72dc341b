"""Polling latency while CPU-heavy jobs run: p50/p99 of `GET /v1/jobs/{id}`, idle vs loaded.

Run: `.venv/bin/python bench/latency.py` (about a minute). Starts `filejob serve` on 127.0.0.1
(2 workers) with its data under a temp dir, and measures sequential polls of one finished job
from one keep-alive client: first on the idle server, then while two jobs compress 200 MB of
random data each with zstd level 19 (CPU-bound for minutes; cancelled after the measurement).
Target: p99 under load <= 50 ms. Figures vary with the machine's load; compare within a run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from run import filejob_command, free_port, start_server, stop_server

POLLS = 1500


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def measure(client: httpx.Client, path: str) -> list[float]:
    samples = []
    for _ in range(POLLS):
        start = time.perf_counter()
        assert client.get(path).status_code == 200
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="filejob-latency-") as tmp:
        env = {
            **os.environ,
            "FILEJOB_DATA_DIR": f"{tmp}/data",
            "FILEJOB_WORKERS": "2",
            "FILEJOB_LOG_LEVEL": "warning",
            "FILEJOB_MIN_FREE_BYTES": "0",
        }
        subprocess.run(
            [*filejob_command(), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        port = free_port()
        argv = [*filejob_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = start_server("filejob", argv, env, port, Path(tmp), "/healthz")
        url = server.url("")
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                job = client.post(
                    "/v1/jobs", data={"processor": "checksum"}, files={"file": ("a", b"abc")}
                ).json()
                path = f"/v1/jobs/{job['id']}"
                measure(client, path)  # warm-up
                idle = measure(client, path)
                heavy = []
                for n in range(2):
                    big = Path(tmp) / f"big{n}.bin"
                    big.write_bytes(os.urandom(200 * 1024 * 1024))
                    with big.open("rb") as body:
                        heavy.append(
                            client.post(
                                "/v1/jobs",
                                data={
                                    "processor": "compress",
                                    "params": '{"format": "zstd", "level": 19}',
                                },
                                files={"file": ("big.bin", body)},
                            ).json()["id"]
                        )
                while any(client.get(f"/v1/jobs/{h}").json()["status"] != "running" for h in heavy):
                    time.sleep(0.05)
                loaded = measure(client, path)
                still_running = all(
                    client.get(f"/v1/jobs/{h}").json()["status"] == "running" for h in heavy
                )
                for h in heavy:
                    client.delete(f"/v1/jobs/{h}")
        finally:
            stop_server(server)

    print(f"GET /v1/jobs/{{id}} latency, {POLLS} sequential polls, one keep-alive client")
    print(f"{'':28}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, samples in (("idle server", idle), ("2 x zstd-19 over 200 MB", loaded)):
        p50, p99, worst = percentiles(samples)
        print(f"{label:28}{p50:9.2f}{p99:9.2f}{worst:9.2f}")
    verdict = "OK" if percentiles(loaded)[1] <= 50 else "ABOVE TARGET"
    print(f"target: p99 under load <= 50 ms: {verdict}")
    print(f"(both heavy jobs still running when the measurement ended: {still_running})")


if __name__ == "__main__":
    main()
