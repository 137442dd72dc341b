"""Poll throughput: `GET /v1/jobs/{id}` of one finished job, plain and conditional.

Run: `.venv/bin/python bench/poll.py [--seconds 10] [--connections 16] [--runs 1]`. Starts
`filejob serve` on 127.0.0.1 with its data under a temp dir, makes one finished `checksum` job,
then loads its poll with wrk (`--latency`; a plain asyncio client if wrk is not installed):
plain polls (200 with the JSON) and conditional ones (`If-None-Match` with the job's ETag:
304, no body). Prints req/s, p99 and the server's CPU per poll (utime + stime from
/proc/<pid>/stat across the run, divided by the requests answered). Figures vary with the
machine's load; CPU per poll is the one that survives a noisy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from run import HOST, proc_cpu_seconds, start_filejob, stop_server, wait_job

WARM_UP = 200
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Figures:
    name: str
    requests: int
    rps: float
    p99_ms: float
    cpu_ms: float  # server CPU per request


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str, headers: dict[str, str], seconds: int, connections: int
) -> tuple[int, float, float]:
    """(requests, req/s, p99 ms) from one wrk run."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for name, value in headers.items():
        argv[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return requests, rps, p99


async def _fallback(
    port: int, path: str, headers: dict[str, str], seconds: int, connections: int
) -> tuple[int, float, float]:
    """wrk's figures from keep-alive asyncio connections (the client shares the CPU)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{extra}\r\n".encode()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] not in (b"200", b"304"):
                raise RuntimeError(f"unexpected response: {head!r}")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            latencies.append((time.perf_counter() - start) * 1000)
        writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(ordered), len(ordered) / (time.monotonic() - t0), p99


def measure(
    name: str, pid: int, port: int, path: str, headers: dict[str, str], args: argparse.Namespace
) -> Figures:
    cpu0 = proc_cpu_seconds(pid)
    if shutil.which("wrk"):
        url = f"http://{HOST}:{port}{path}"
        n, rps, p99 = wrk(url, headers, args.seconds, args.connections)
    else:
        load = _fallback(port, path, headers, args.seconds, args.connections)
        n, rps, p99 = asyncio.run(load)
    cpu = proc_cpu_seconds(pid) - cpu0
    return Figures(name, n, rps, p99, cpu * 1000 / n)


def finished_job(base: str, scratch: Path) -> tuple[str, str]:
    """A succeeded checksum job's id, and its poll's ETag."""
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.post(
            "/v1/jobs", files={"file": ("a.txt", b"x" * 1024)}, data={"processor": "checksum"}
        )
        r.raise_for_status()
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while client.get(f"/v1/jobs/{job_id}").json()["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} did not finish")
            time.sleep(0.1)
        for _ in range(WARM_UP):
            poll = client.get(f"/v1/jobs/{job_id}")
        return job_id, poll.headers["etag"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1, help="alternating plain/conditional")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="filejob-poll-") as tmp:
        scratch = Path(tmp)
        server = start_filejob("filejob", scratch / "data", fsync=True, log_dir=scratch)
        try:
            job_id, etag = finished_job(server.url(""), scratch)
            assert wait_job(server, job_id)["status"] == "succeeded"
            path = f"/v1/jobs/{job_id}"
            print(f"{'poll':<12} {'requests':>9} {'req/s':>9} {'p99 ms':>8} {'CPU ms/req':>11}")
            for _ in range(args.runs):
                for name, headers in (("plain", {}), ("conditional", {"If-None-Match": etag})):
                    f = measure(name, server.pid, server.port, path, headers, args)
                    print(
                        f"{f.name:<12} {f.requests:>9} {f.rps:>9.0f} {f.p99_ms:>8.2f} "
                        f"{f.cpu_ms:>11.3f}"
                    )
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
