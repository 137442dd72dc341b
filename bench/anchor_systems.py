"""The systems the anchors measure, started and stopped by the bench: filejob, the FastAPI +
Celery and + arq recipes (bench/anchors/), the bare FastAPI + SQLite poll floor; each a
`System` that knows its port, the processes whose CPU counts and how to stop them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed
from anchor_client import HOST, Conn
from run import Server, filejob_command, filejob_env, free_port, start_server, stop_server

RECIPES = Path(__file__).resolve().parent / "anchors"
REDIS_URL = "redis://127.0.0.1:6379"
MARKER = "filejob-anchors"  # a key saying this bench owns the db it flushes
READY_TIMEOUT = 30.0

# The plan's steps, which are also what a system says it takes part in.
SMALL, GZIP_JOBS, SUBMITS, DOWNLOADS = "small jobs", "gzip jobs", "submits", "downloads"
POLLS, ETAG_POLLS, BUSY_POLLS = "polls", "etag polls", "busy polls"
BIG_UPLOADS, BIG_DOWNLOADS = "big uploads", "big downloads"
QUEUE_STEPS = frozenset({SMALL, GZIP_JOBS, SUBMITS, POLLS, DOWNLOADS})


def _no_pids() -> list[int]:
    return []


@dataclass
class System:
    """One side of the comparison: its port, the processes to account and how to stop them."""

    name: str
    port: int
    roots: list[int]  # process (tree) roots whose CPU counts
    stop: Callable[[], None]
    takes: frozenset[str] = QUEUE_STEPS
    poll_path: str = ""
    # Processes outside the trees whose CPU counts too (a PostgreSQL database's backends).
    more_pids: Callable[[], list[int]] = _no_pids
    server: Server | None = None  # for bench/run.py's transfers (filejob)
    big_path: str = ""  # where it serves the 1 GiB file (nginx, the Celery recipe, filejob)
    finished: list[str] = field(default_factory=list)

    def cpu(self) -> float:
        """CPU seconds of every process in the trees under `roots`, reaped children included,
        and of `more_pids`."""
        procs = []
        for root in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs.append(psutil.Process(root))
                procs += procs[-1].children(recursive=True)
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        for pid in self.more_pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
        return total

    def path(self) -> str:
        """What it is polled on: a finished small job's status."""
        return self.poll_path or f"/v1/jobs/{self.finished[0]}"


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
            return (await conn.call("GET", "/healthz")).status == 200
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


@dataclass(frozen=True)
class QueueRecipe:
    """A recipe with an API process and a worker, both on Redis db `db`."""

    name: str  # the system's name
    module: str  # celery_recipe, arq_recipe
    db: int
    worker: list[str]
    takes: frozenset[str] = QUEUE_STEPS
    big: Path | None = None  # served at /v1/files/big (the Celery recipe)


def start_queue_recipe(recipe: QueueRecipe, tmp: Path) -> System:
    claim_redis_db(recipe.db)
    big = {"ANCHOR_BIG": str(recipe.big)} if recipe.big else {}
    env = recipe_env(
        ANCHOR_DATA=str(tmp / recipe.name), ANCHOR_REDIS=f"{REDIS_URL}/{recipe.db}", **big
    )
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", f"{recipe.module}:app", "--host", HOST]
    api = spawn(f"{recipe.name}-api", [*uvicorn, "--port", str(port)], env, tmp)
    work = spawn(f"{recipe.name}-worker", recipe.worker, env, tmp)

    def stop() -> None:
        stop_group(api)
        stop_group(work)
        release_redis_db(recipe.db)

    try:
        wait_ready(f"{recipe.name}-api", api, port, tmp)
    except BaseException:
        stop()
        raise
    pid = redis_pid()
    roots = [api.pid, work.pid, *([pid] if pid else [])]
    takes = recipe.takes | ({BIG_DOWNLOADS} if recipe.big else set())
    return System(recipe.name, port, roots, stop, takes, big_path="/v1/files/big")


def celery_worker(concurrency: int) -> list[str]:
    argv = [sys.executable, "-m", "celery", "-A", "celery_recipe.celery", "worker"]
    return [*argv, "--pool=prefork", f"--concurrency={concurrency}", "--loglevel=WARNING"]


def arq_worker() -> list[str]:
    return [sys.executable, "-m", "arq", "arq_recipe.WorkerSettings"]


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
    path = f"/v1/jobs/{job_id}"
    return System("sqlite", port, [api.pid], lambda: stop_group(api), frozenset({POLLS}), path)


def start_filejob(tmp: Path, takes: frozenset[str]) -> System:
    """filejob's embedded profile (SQLite, a local folder, jobs run in the server)."""
    env = filejob_env(tmp / "filejob", fsync=True)
    subprocess.run(
        [*filejob_command(), "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True
    )
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", HOST, "--port", str(port)]
    server = start_server("filejob", argv, env, port, tmp, "/healthz")
    return System("filejob", port, [server.pid], lambda: stop_filejob(server), takes, server=server)


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
