"""CPU per small process-isolated job: `compress` (isolation "process") of 1 KiB files.

Run: `.venv/bin/python bench/isolation.py [--jobs 200] [--rounds 3] [--tree NAME=SRC ...]`
(about a minute per variant and round). Prints one line per variant and round, then the
medians.

Variants, each one `filejob serve` (embedded profile, FILEJOB_FSYNC=false so that the disk's
flushes do not pace the jobs; FILEJOB_WORKERS=2) on its own data dir, all started at once and
measured in turn, the order rotating by round:
- `pool`: this checkout, defaults: warm workers reused across jobs.
- `fresh`: this checkout with FILEJOB_ISOLATION_MAX_JOBS=1: a fresh worker per job, the cost
  the pool saves (what every job paid before it).
- `thread`: the floor, `checksum` jobs (a thread-run processor: no process) of the same size.
- `--tree NAME=SRC`: a server run from another source root (a copy of `service/`, e.g. the
  code before the pool), put first on PYTHONPATH; `--set NAME:FILEJOB_X=VALUE` adds a setting
  to a variant.

Per round and variant: `--clients` asyncio clients on raw keep-alive HTTP/1.1 connections
submit `--jobs` jobs in all (each its share, one after another; `{"format":"gzip"}`, 1 KiB of
random bytes); one more connection asks every 20 ms whether a job is still queued or running
(two `GET /v1/jobs?status=...&limit=1`: a cost per sweep, not per job); the round ends when
none is. jobs/s = jobs / (first submit -> nothing left). CPU per job = the user + system time
of the server's whole process tree (server, forkserver, workers, resource tracker; the time of
exited children included through their parents' cutime/cstime, found with psutil) across the
round, / jobs; `isolation` is the share of its children (forkserver, workers). A round of
`--jobs` unmeasured jobs per variant comes first (imports, first workers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed
from run import HOST, Server, filejob_command, filejob_env, free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
BOUNDARY = "isolationbench7MA4YWxkTrZu0gW"
SWEEP = 0.02


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    processor: str = "compress"


@dataclass(frozen=True)
class Figures:
    jobs_per_s: float
    cpu_ms: float  # whole tree, per job
    isolation_ms: float  # the server's children only, per job


# -- the server's CPU ------------------------------------------------------------------------


def tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of `pid` and of its descendants (each with its reaped children's)."""

    root = psutil.Process(pid)
    t = root.cpu_times()
    own, children = t.user + t.system, t.children_user + t.children_system
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            t = child.cpu_times()
            children += t.user + t.system + t.children_user + t.children_system
    return float(own), float(children)


# -- a small raw HTTP/1.1 client (cheaper than httpx, on the machine it measures) ------------


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection(HOST, port))

    async def call(self, method: str, path: str, body: bytes = b"", ctype: str = "") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        return data

    def close(self) -> None:
        self.writer.close()


def job_form(processor: str, data: bytes) -> bytes:
    params = b'{"format":"gzip"}' if processor == "compress" else b"{}"
    parts = [
        (b'name="processor"', processor.encode()),
        (b'name="params"', params),
        (b'name="file"; filename="small.bin"\r\nContent-Type: application/octet-stream', data),
    ]
    out = b""
    for disposition, value in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        out += b"Content-Disposition: form-data; " + disposition + b"\r\n\r\n" + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def submit_all(port: int, processor: str, jobs: int, clients: int) -> list[str]:
    body = job_form(processor, os.urandom(1024))
    ctype = f"multipart/form-data; boundary={BOUNDARY}"

    async def client(count: int) -> list[str]:
        conn = await Conn.open(port)
        try:
            return [
                json.loads(await conn.call("POST", "/v1/jobs", body, ctype))["id"]
                for _ in range(count)
            ]
        finally:
            conn.close()

    shares = [jobs // clients + (n < jobs % clients) for n in range(clients)]
    done = await asyncio.gather(*(client(share) for share in shares if share))
    return [job_id for ids in done for job_id in ids]


async def until_idle(port: int) -> None:
    conn = await Conn.open(port)
    try:
        while True:
            busy = False
            for status in ("queued", "running"):
                reply = await conn.call("GET", f"/v1/jobs?status={status}&limit=1")
                busy = busy or bool(json.loads(reply)["items"])
            if not busy:
                return
            await asyncio.sleep(SWEEP)
    finally:
        conn.close()


async def one_round(server: Server, processor: str, jobs: int, clients: int) -> Figures:
    own, children = tree_cpu(server.pid)
    start = time.perf_counter()
    ids = await submit_all(server.port, processor, jobs, clients)
    await until_idle(server.port)
    elapsed = time.perf_counter() - start
    own_after, children_after = tree_cpu(server.pid)
    conn = await Conn.open(server.port)
    try:
        failed = [
            job_id
            for job_id in ids[-5:]
            if json.loads(await conn.call("GET", f"/v1/jobs/{job_id}"))["status"] != "succeeded"
        ]
    finally:
        conn.close()
    if failed:
        raise RuntimeError(f"{server.name}: jobs did not succeed: {failed}")
    spent = (own_after - own) + (children_after - children)
    return Figures(jobs / elapsed, 1000 * spent / jobs, 1000 * (children_after - children) / jobs)


# -- servers and rounds ----------------------------------------------------------------------


def start(variant: Variant, tmp: Path) -> Server:
    data_dir = tmp / variant.name
    env = filejob_env(data_dir, fsync=False)
    env.update(FILEJOB_WORKERS="2", FILEJOB_LOG_LEVEL="warning", FILEJOB_MIN_FREE_BYTES="0")
    env.update(FILEJOB_MAX_ACTIVE_JOBS="0", FILEJOB_RATE_LIMIT="0", **variant.env)
    subprocess.run(
        [*filejob_command(), "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", HOST, "--port", str(port)]
    return start_server(variant.name, argv, env, port, tmp, "/healthz")


def variants(trees: list[str], settings: list[str]) -> list[Variant]:
    out = [Variant("pool", {}), Variant("fresh", {"FILEJOB_ISOLATION_MAX_JOBS": "1"})]
    out.append(Variant("thread", {}, processor="checksum"))
    for tree in trees:
        name, _, src = tree.partition("=")
        path = os.pathsep.join([str(Path(src).resolve()), os.environ.get("PYTHONPATH", "")])
        out.append(Variant(name, {"PYTHONPATH": path.rstrip(os.pathsep)}))
    for setting in settings:  # NAME:FILEJOB_X=VALUE
        name, _, assignment = setting.partition(":")
        key, _, value = assignment.partition("=")
        next(v for v in out if v.name == name).env[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--set", action="append", default=[], metavar="NAME:FILEJOB_X=VALUE")
    parser.add_argument("--only", action="append", default=[], help="run only these variants")
    args = parser.parse_args()
    chosen = [v for v in variants(args.tree, args.set) if not args.only or v.name in args.only]
    processor = {v.name: v.processor for v in chosen}
    results: dict[str, list[Figures]] = {v.name: [] for v in chosen}
    with tempfile.TemporaryDirectory(prefix="filejob-isolation-") as tmp:
        servers: list[Server] = []
        try:
            servers = [start(v, Path(tmp)) for v in chosen]
            for server in servers:
                asyncio.run(one_round(server, processor[server.name], args.jobs, args.clients))
            for r in range(args.rounds):
                for server in servers[r % len(servers) :] + servers[: r % len(servers)]:
                    figures = asyncio.run(
                        one_round(server, processor[server.name], args.jobs, args.clients)
                    )
                    results[server.name].append(figures)
                    print(
                        f"round {r + 1} {server.name:>8}: {figures.jobs_per_s:7.1f} jobs/s "
                        f"{figures.cpu_ms:7.2f} ms CPU/job ({figures.isolation_ms:6.2f} in "
                        "the isolation children)",
                        flush=True,
                    )
        finally:
            for server in servers:
                stop_server(server)
    print(f"\nmedians, {args.jobs} jobs x {args.rounds} rounds, {os.cpu_count()} CPUs:")
    print(f"{'variant':>8} {'jobs/s':>8} {'CPU ms/job':>11} {'isolation':>10}")
    for name, runs in results.items():
        print(
            f"{name:>8} {statistics.median(f.jobs_per_s for f in runs):8.1f} "
            f"{statistics.median(f.cpu_ms for f in runs):11.2f} "
            f"{statistics.median(f.isolation_ms for f in runs):10.2f}"
        )


if __name__ == "__main__":
    main()
