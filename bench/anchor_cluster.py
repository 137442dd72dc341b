"""filejob's cluster profile for the anchors: `filejob serve` with
FILEJOB_EXECUTOR=procrastinate on a fresh PostgreSQL database of the local server, and N
`filejob worker` processes. Files live in one local folder all of them share (one machine), so
the figure is the queue's path, not an S3 store's. The database's backends count as the
system's CPU, as Redis does for the recipes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from anchor_client import HOST
from anchor_systems import SMALL, System, spawn, stop_filejob, stop_group
from run import ROOT, filejob_command, filejob_env, free_port, start_server

sys.path.insert(0, str(ROOT))  # the tests' service helpers: a PostgreSQL database
from tests.support.services import POSTGRES, postgres_database


def postgres_unreachable() -> str | None:
    """Why the cluster profile cannot run here, or None."""
    try:
        psycopg.connect(f"postgresql://{POSTGRES}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {POSTGRES} is not reachable ({' '.join(str(exc).split())})"
    return None


def _backends(database: str) -> tuple[Callable[[], list[int]], Callable[[], None]]:
    """(the PIDs of `database`'s backends now, close): read from pg_stat_activity over one
    connection to another database, so that it is not one of them."""
    admin = psycopg.connect(f"postgresql://{POSTGRES}/postgres", autocommit=True)

    def pids() -> list[int]:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
        return [int(row[0]) for row in admin.execute(query, (database,)).fetchall()]

    return pids, admin.close


def start_cluster(tmp: Path, workers: int, slots: int) -> System:
    """filejob-pg<workers>: one API server and `workers` worker processes, each running
    `slots` jobs at once, on a new database, dropped when the system stops."""
    name = f"filejob-pg{workers}"
    stack = contextlib.ExitStack()
    procs: list[subprocess.Popen[bytes]] = []

    def stop() -> None:
        for proc in procs:
            stop_group(proc)  # SIGTERM first: a graceful stop
        stack.close()

    try:
        url = stack.enter_context(postgres_database())
        env = filejob_env(tmp / name, fsync=True)
        env.update(FILEJOB_DATABASE_URL=url, FILEJOB_EXECUTOR="procrastinate")
        subprocess.run(
            [*filejob_command(), "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True
        )
        port = free_port()
        argv = [*filejob_command(), "serve", "--host", HOST, "--port", str(port)]
        server = start_server(name, argv, env, port, tmp, "/healthz")
        stack.callback(stop_filejob, server)
        worker = [*filejob_command(), "worker", "--concurrency", str(slots)]
        procs += [spawn(f"{name}-worker{n}", worker, env, tmp) for n in range(workers)]
        pids, close = _backends(url.rsplit("/", 1)[1])
        stack.callback(close)
    except BaseException:
        stop()
        raise
    roots = [server.pid, *(proc.pid for proc in procs)]
    return System(name, port, roots, stop, frozenset({SMALL}), more_pids=pids)
