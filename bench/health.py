"""How fast the operator endpoints answer: p50/p99 of `/healthz`, `/readyz` and `/metrics`,
against the bare baseline's `/ping` (bench/bare_app.py) measured in the same run.

Run: `.venv/bin/python bench/health.py` (about 20 s). Starts `filejob serve` (embedded, with
100 jobs in its database so that `/metrics` has rows to count) and the bare app on
127.0.0.1; one keep-alive client sends `REQUESTS` sequential requests to each path.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
from run import start_bare, start_filejob, stop_server

REQUESTS = 500


def timings(client: httpx.Client, path: str) -> list[float]:
    samples = []
    for _ in range(REQUESTS + 20):
        start = time.perf_counter()
        assert client.get(path).status_code == 200, path
        samples.append((time.perf_counter() - start) * 1000)
    return sorted(samples[20:])  # the first few warm up


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="filejob-health-") as tmp:
        root = Path(tmp)
        (root / "served").write_bytes(b"x")
        bare = start_bare(root / "bare", root / "served", root)
        server = start_filejob("filejob", root / "data", False, root)
        results = {}
        try:
            with httpx.Client(base_url=server.url(""), timeout=30) as client:
                for _ in range(100):
                    client.post("/v1/jobs", data={"processor": "checksum"}, files={"file": b"a"})
                for path in ("/healthz", "/readyz", "/metrics"):
                    results[path] = timings(client, path)
            with httpx.Client(base_url=bare.url(""), timeout=30) as client:
                results["bare /ping"] = timings(client, "/ping")
        finally:
            stop_server(server)
            stop_server(bare)
    baseline = statistics.median(results["bare /ping"])
    print(f"Operator endpoints, {REQUESTS} sequential requests each, one keep-alive client")
    print(f"{'':12}{'p50 ms':>9}{'p99 ms':>9}{'p50 ratio':>11}")
    for path, samples in results.items():
        p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99)]
        print(f"{path:12}{p50:9.2f}{p99:9.2f}{p50 / baseline:11.1f}")


if __name__ == "__main__":
    main()
