"""Anchors: filejob's small-job path side by side with the recipes its users would otherwise pick.

Run: `.venv/bin/python bench/anchors.py [--rounds 3] [--quick]` (needs Redis on 127.0.0.1:6379,
celery[redis] and arq in the venv; wrk if installed). Prints one markdown table and writes it
to `bench/out/anchors.md`.

Systems, each started here on 127.0.0.1 free ports (uvicorn, one process) under one temp dir:
filejob (`filejob serve`, embedded defaults, FILEJOB_FSYNC=true); `bench/anchors/celery_recipe.py`
(FastAPI + Celery, Redis db 9, prefork worker x2); `bench/anchors/arq_recipe.py` (FastAPI + arq,
Redis db 10, one worker); `bench/anchors/sqlite_recipe.py` (one SQLite row read: polls only).
The recipes do `checksum`'s work: the upload fsynced to disk, a task writing the digests as a
fsynced JSON file, status and result endpoints. Their Redis dbs are flushed before and after,
and a db holding keys this bench did not write is refused.

Per round, each figure is measured on every system in turn (the order rotates by round);
the table gives medians and [min-max] over rounds. Clients are raw asyncio HTTP/1.1 keep-alive
connections (cheaper than httpx, since they share the CPUs with the servers):
- small jobs/s: 8 clients submit N 1 KiB files, then poll their jobs (a sweep every 20 ms)
  until all are final; first submit -> last final.
- submits/s: 8 clients, first submit -> last 202 (the jobs then finish before the next figure).
- polls: wrk, 2 threads x 16 connections, on one finished job (without wrk: 16 asyncio
  connections, closed loop).
- downloads/s: 8 clients fetch the results of finished jobs.
Server CPU per unit is user+system time, children included, of every process the system runs
(API, workers, their children, found with psutil) and of the Redis server for the recipes,
before and after each figure, divided by the count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]  # no stubs installed
from run import OUT, Server, filejob_command, filejob_env, free_port, start_server, stop_server

HOST = "127.0.0.1"
RECIPES = Path(__file__).resolve().parent / "anchors"
REDIS_URL = "redis://127.0.0.1:6379"
MARKER = "filejob-anchors"  # a key saying this bench owns the db it flushes
BOUNDARY = "anchorsboundary7MA4YWxkTrZu0gW"
CLIENTS = 8
POLL_CONNECTIONS = 16
FINAL = {"succeeded", "failed", "cancelled", "expired"}
READY_TIMEOUT = 30.0


# -- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------


class Conn:
    """One keep-alive connection; `call` sends one request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection(HOST, port))

    async def call(
        self, method: str, path: str, body: bytes = b"", ctype: str | None = None
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        chunks = []  # chunked
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readuntil(b"\r\n")
        return status, b"".join(chunks)

    def close(self) -> None:
        self.writer.close()


def multipart_file(size: int = 1024) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="in.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + os.urandom(size)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


async def _submit(conn: Conn) -> str:
    status, body = await conn.call(
        "POST", "/v1/jobs", multipart_file(), f"multipart/form-data; boundary={BOUNDARY}"
    )
    if status != 202:
        raise RuntimeError(f"submit: {status} {body[:300]!r}")
    return str(json.loads(body)["id"])


async def _await_all(conn: Conn, ids: list[str]) -> None:
    pending = ids
    while pending:
        still = []
        for job_id in pending:
            status, body = await conn.call("GET", f"/v1/jobs/{job_id}")
            if status != 200:
                raise RuntimeError(f"poll {job_id}: {status} {body[:300]!r}")
            state = json.loads(body)["status"]
            if state not in FINAL:
                still.append(job_id)
            elif state != "succeeded":
                raise RuntimeError(f"job {job_id} ended {state}: {body[:300]!r}")
        pending = still
        if pending:
            await asyncio.sleep(0.02)


async def _jobs(port: int, n: int, wait: bool) -> tuple[float, list[str]]:
    """8 clients submit n jobs (then, with `wait`, poll them until final): (seconds, ids)."""
    t0 = time.monotonic()

    async def client(k: int) -> tuple[float, list[str]]:
        conn = await Conn.open(port)
        try:
            ids = [await _submit(conn) for _ in range(k, n, CLIENTS)]
            submitted = time.monotonic()
            if wait:
                await _await_all(conn, ids)
            return (time.monotonic() if wait else submitted), ids
        finally:
            conn.close()

    done = await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return max(end for end, _ in done) - t0, [i for _, ids in done for i in ids]


async def _finish(port: int, ids: list[str]) -> None:
    conn = await Conn.open(port)
    try:
        await _await_all(conn, ids)
    finally:
        conn.close()


async def _downloads(port: int, ids: list[str], n: int) -> float:
    t0 = time.monotonic()

    async def client(k: int) -> None:
        conn = await Conn.open(port)
        try:
            for i in range(k, n, CLIENTS):
                status, body = await conn.call("GET", f"/v1/jobs/{ids[i % len(ids)]}/result")
                if status != 200 or b"sha256" not in body:
                    raise RuntimeError(f"download: {status} {body[:300]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return time.monotonic() - t0


async def _polls(port: int, path: str, seconds: float) -> tuple[int, list[float]]:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def client() -> None:
        conn = await Conn.open(port)
        try:
            while time.monotonic() < deadline:
                t = time.perf_counter()
                status, _ = await conn.call("GET", path)
                latencies.append(time.perf_counter() - t)
                if status != 200:
                    raise RuntimeError(f"poll: {status}")
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(POLL_CONNECTIONS)))
    return len(latencies), latencies


def polls(port: int, path: str, seconds: float) -> tuple[int, float, float]:
    """(requests, req/s, p99 ms) of `seconds` of polling `path` with 16 connections."""
    if not shutil.which("wrk"):
        count, lat = asyncio.run(_polls(port, path, seconds))
        return count, count / seconds, sorted(lat)[int(len(lat) * 0.99)] * 1000
    argv = ["wrk", "-t2", f"-c{POLL_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    out = subprocess.run([*argv, f"http://{HOST}:{port}{path}"], capture_output=True, text=True)
    text = out.stdout
    if out.returncode or "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk: {out.returncode} {text} {out.stderr}")
    count = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return count, rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# -- systems ---------------------------------------------------------------------------------


@dataclass
class System:
    """One side of the comparison: its port, the processes to account and how to stop them."""

    name: str
    port: int
    roots: list[int]  # process (tree) roots whose CPU counts
    stop: Callable[[], None]
    jobs: bool = True  # False: polls only
    poll_path: str = ""
    finished: list[str] = field(default_factory=list)

    def cpu(self) -> float:
        """CPU seconds of every process in the trees under `roots`, reaped children included."""
        total = 0.0
        for root in self.roots:
            try:
                procs = [psutil.Process(root)]
                procs += procs[0].children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    t = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += t.user + t.system + t.children_user + t.children_system
        return total


def spawn(
    name: str, argv: list[str], env: dict[str, str], log_dir: Path
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session (and so a process group) of its own, logging to a file."""
    with (log_dir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            argv, env=env, cwd=RECIPES, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group this bench created, then SIGKILL what is left after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def wait_ready(name: str, proc: subprocess.Popen[bytes], port: int, log_dir: Path) -> None:
    async def probe() -> bool:
        try:
            conn = await Conn.open(port)
        except OSError:
            return False
        try:
            return (await conn.call("GET", "/healthz"))[0] == 200
        finally:
            conn.close()

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {(log_dir / f'{name}.log').read_text()[-2000:]}")
        if asyncio.run(probe()):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT} s")


def recipe_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILEJOB_")}
    return {**env, "PYTHONPATH": str(RECIPES), **extra}


def claim_redis_db(db: int) -> None:
    """Flush Redis db `db`, refusing one that holds keys of someone else's."""
    cli = ["redis-cli", "-h", HOST, "-n", str(db)]
    size = int(subprocess.run([*cli, "dbsize"], capture_output=True, text=True).stdout or -1)
    if size < 0:
        raise RuntimeError("Redis is not answering on 127.0.0.1:6379")
    owned = subprocess.run([*cli, "exists", MARKER], capture_output=True, text=True).stdout
    if size and owned.strip() != "1":
        raise RuntimeError(f"Redis db {db} holds {size} keys this bench did not write")
    subprocess.run([*cli, "flushdb"], check=True, capture_output=True)
    subprocess.run([*cli, "set", MARKER, "1"], check=True, capture_output=True)


def release_redis_db(db: int) -> None:
    subprocess.run(["redis-cli", "-h", HOST, "-n", str(db), "flushdb"], capture_output=True)


def redis_pid() -> int | None:
    info = subprocess.run(["redis-cli", "-h", HOST, "info", "server"], capture_output=True)
    found = re.search(rb"process_id:(\d+)", info.stdout)
    return int(found[1]) if found else None


def start_queue_recipe(name: str, db: int, worker: list[str], tmp: Path) -> System:
    """A recipe with an API process and a worker, both on Redis db `db`."""
    claim_redis_db(db)
    env = recipe_env(ANCHOR_DATA=str(tmp / name), ANCHOR_REDIS=f"{REDIS_URL}/{db}")
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", f"{name}_recipe:app", "--host", HOST]
    api = spawn(f"{name}-api", [*uvicorn, "--port", str(port)], env, tmp)
    work = spawn(f"{name}-worker", worker, env, tmp)

    def stop() -> None:
        stop_group(api)
        stop_group(work)
        release_redis_db(db)

    try:
        wait_ready(f"{name}-api", api, port, tmp)
    except BaseException:
        stop()
        raise
    pid = redis_pid()
    roots = [api.pid, work.pid, *([pid] if pid else [])]
    return System(name, port, roots, stop)


def start_sqlite(tmp: Path) -> System:
    job_id = secrets.token_urlsafe(16)
    env = recipe_env(ANCHOR_DB=str(tmp / "anchor.db"), ANCHOR_JOB_ID=job_id)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "sqlite_recipe:app", "--host", HOST]
    api = spawn("sqlite-api", [*argv, "--port", str(port)], env, tmp)
    try:
        wait_ready("sqlite-api", api, port, tmp)
    except BaseException:
        stop_group(api)
        raise
    return System(
        "sqlite",
        port,
        [api.pid],
        lambda: stop_group(api),
        jobs=False,
        poll_path=f"/v1/jobs/{job_id}",
    )


def start_filejob(tmp: Path) -> System:
    env = filejob_env(tmp / "filejob", fsync=True)
    subprocess.run(
        [*filejob_command(), "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True
    )
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", HOST, "--port", str(port)]
    server = start_server("filejob", argv, env, port, tmp, "/healthz")

    def stop() -> None:
        stop_filejob(server)

    return System("filejob", port, [server.pid], stop)


def stop_filejob(server: Server) -> None:
    """Stop filejob by PID, then any of its children that outlived it (by PID)."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    stop_server(server)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


# -- figures ---------------------------------------------------------------------------------

JOB_TIMEOUT = 300.0
Figures = dict[str, float]


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, JOB_TIMEOUT))


def per_unit_ms(cpu_s: float, count: int) -> float:
    return cpu_s / count * 1000


def small_jobs(s: System, n: int) -> Figures:
    cpu0 = s.cpu()
    seconds, ids = run_async(_jobs(s.port, n, wait=True))
    cpu = s.cpu() - cpu0
    s.finished = ids
    return {"jobs": n / seconds, "cpu_job": per_unit_ms(cpu, n)}


def submits(s: System, n: int) -> Figures:
    cpu0 = s.cpu()
    seconds, ids = run_async(_jobs(s.port, n, wait=False))
    cpu = s.cpu() - cpu0
    run_async(_finish(s.port, ids))  # quiet again before the next figure
    return {"submits": n / seconds, "cpu_submit": per_unit_ms(cpu, n)}


def poll(s: System, seconds: float) -> Figures:
    path = s.poll_path or f"/v1/jobs/{s.finished[0]}"
    cpu0 = s.cpu()
    count, rps, p99 = polls(s.port, path, seconds)
    cpu = s.cpu() - cpu0
    return {"polls": rps, "poll_p99": p99, "cpu_poll": per_unit_ms(cpu, count)}


def downloads(s: System, n: int) -> Figures:
    cpu0 = s.cpu()
    seconds = run_async(_downloads(s.port, s.finished, n))
    cpu = s.cpu() - cpu0
    return {"downloads": n / seconds, "cpu_download": per_unit_ms(cpu, n)}


@dataclass
class Plan:
    jobs: int
    poll_seconds: float
    downloads: int
    rounds: int

    def steps(self) -> list[tuple[str, Callable[[System], Figures], bool]]:
        """(name, measure, needs jobs) in the order each round runs them."""
        return [
            ("small jobs", lambda s: small_jobs(s, self.jobs), True),
            ("submits", lambda s: submits(s, self.jobs), True),
            ("polls", lambda s: poll(s, self.poll_seconds), False),
            ("downloads", lambda s: downloads(s, self.downloads), True),
        ]


def warm_up(s: System) -> None:
    """First-request costs (imports, caches, worker start) stay out of the figures."""
    if s.jobs:
        try:
            small_jobs(s, 2 * CLIENTS)
        except TimeoutError:
            raise RuntimeError(f"{s.name}: warm-up jobs not finished (see its worker)") from None
        downloads(s, 2 * CLIENTS)
    polls(s.port, s.poll_path or f"/v1/jobs/{s.finished[0]}", 1)


def measure(systems: list[System], plan: Plan) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in systems}
    for s in systems:
        warm_up(s)
    for round_no in range(plan.rounds):
        order = systems[round_no % len(systems) :] + systems[: round_no % len(systems)]
        for step, run_step, needs_jobs in plan.steps():
            for s in order:
                if needs_jobs and not s.jobs:
                    continue
                figures = run_step(s)
                for key, value in figures.items():
                    results[s.name].setdefault(key, []).append(value)
                shown = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
                print(f"  round {round_no + 1} {step:10} {s.name:8} {shown}", file=sys.stderr)
    return results


# -- the table -------------------------------------------------------------------------------

COLUMNS = ("filejob", "celery", "arq", "sqlite")


def rows(plan: Plan, poller: str) -> list[tuple[str, str, int]]:
    """(figure key, label, decimals)."""
    return [
        ("jobs", f"small `checksum` jobs/s ({plan.jobs} x 1 KiB, first submit → last final)", 0),
        ("cpu_job", "server CPU per small job, ms (incl. its polls)", 2),
        ("submits", "submits/s (1 KiB multipart)", 0),
        ("cpu_submit", "server CPU per submit, ms (incl. jobs run meanwhile)", 2),
        ("polls", f"poll `GET /v1/jobs/{{id}}` req/s ({poller}, 16 conns)", 0),
        ("poll_p99", "poll p99, ms", 1),
        ("cpu_poll", "server CPU per poll, ms", 3),
        ("downloads", "small result downloads/s", 0),
        ("cpu_download", "server CPU per download, ms", 2),
    ]


def cell(values: list[float] | None, decimals: int) -> str:
    if not values:
        return ""
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{decimals}f}"
    return f"{med:,.{decimals}f} [{min(values):,.{decimals}f}-{max(values):,.{decimals}f}]"


def table(results: dict[str, dict[str, list[float]]], plan: Plan, poller: str) -> str:
    lines = [
        "| figure | filejob | FastAPI + Celery (Redis, prefork x2) | FastAPI + arq "
        "| bare FastAPI + one SQLite read | filejob / Celery |",
        "|---|---|---|---|---|---|",
    ]
    for key, label, decimals in rows(plan, poller):
        cells = [cell(results[name].get(key), decimals) for name in COLUMNS]
        fj, cel = results["filejob"].get(key), results["celery"].get(key)
        ratio = f"{statistics.median(fj) / statistics.median(cel):.2f}x" if fj and cel else ""
        lines.append(f"| {label} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def header(plan: Plan, argv: list[str], wall: float, poller: str) -> str:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    redis_version = redis.split()[2].removeprefix("v=") if redis else "?"
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"`.venv/bin/python bench/anchors.py {' '.join(argv)}` on {stamp}, {wall:.0f} s wall; "
        f"{os.cpu_count()} CPUs ({cpu}); medians [min-max] of {plan.rounds} interleaved rounds; "
        f"polls by {poller}; celery {version('celery')}, arq {version('arq')}, "
        f"redis {redis_version}, uvicorn {version('uvicorn')}, "
        f"fastapi {version('fastapi')}. Server CPU counts the API and worker process trees, "
        "and for Celery and arq the Redis server too."
    )


def start_all(tmp: Path, systems: list[System]) -> None:
    """Start the systems into `systems` (so whatever started is stopped on failure)."""
    systems.append(start_filejob(tmp))
    celery = [sys.executable, "-m", "celery", "-A", "celery_recipe.celery", "worker"]
    celery += ["--pool=prefork", "--concurrency=2", "--loglevel=WARNING"]
    systems.append(start_queue_recipe("celery", 9, celery, tmp))
    arq = [sys.executable, "-m", "arq", "arq_recipe.WorkerSettings"]
    systems.append(start_queue_recipe("arq", 10, arq, tmp))
    systems.append(start_sqlite(tmp))


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so `finally` stops what was started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer jobs, shorter poll runs")
    args = parser.parse_args()
    plan = Plan(jobs=200, poll_seconds=8, downloads=800, rounds=args.rounds)
    if args.quick:
        plan = Plan(jobs=80, poll_seconds=3, downloads=240, rounds=args.rounds)
    poller = "wrk" if shutil.which("wrk") else "asyncio client"
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="filejob-anchors-"))
    systems: list[System] = []
    try:
        start_all(tmp, systems)
        results = measure(systems, plan)
    finally:
        for s in reversed(systems):
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.monotonic() - started
    text = f"{header(plan, sys.argv[1:], wall, poller)}\n\n{table(results, plan, poller)}\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "anchors.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
