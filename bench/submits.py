"""Submits: `POST /v1/jobs` of 1 KiB multipart files from 8 clients, FILEJOB_FSYNC=true.

Run: `.venv/bin/python bench/submits.py [--submits 400] [--rounds 3] [--base SRC] [--keyed]
[--profile OUT]`. Starts `filejob serve` (one process, on 127.0.0.1, its data under a temp
dir) for this checkout and, with `--base`, a second one running the package found under the
source root SRC (e.g. a `git worktree` of an older commit: `--base /tmp/base/service`), and
measures them interleaved, the order alternating by round. Per round and server: 8 keep-alive
clients (bench/anchor_client.py's) submit `--submits` files, first submit -> last 202, as the
anchors suite's "submits/s" row does (the in-process executor runs the jobs meanwhile, as it
would in use); then the jobs are awaited, so that the next measurement starts quiet.

Prints submits/s and the server's CPU per submit (utime + stime of the process, from
/proc/<pid>/stat, across the submits), per round and as medians. CPU per submit is the figure
that survives a noisy machine. `--keyed` submits with an API key that has limits (active jobs,
storage), so the admission checks run; without it the caller is anonymous and unlimited.
`--profile OUT` records the (last) server with py-spy (`--gil -f raw -r 250`) during one more
run of the submits and writes the folded stacks to OUT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from anchor_client import BOUNDARY, CHECKSUM, CLIENTS, FINAL, Conn, multipart
from run import (
    ROOT,
    Server,
    filejob_command,
    filejob_env,
    free_port,
    proc_cpu_seconds,
    start_server,
    stop_server,
)

HOST = "127.0.0.1"
WARM_UP = 4 * CLIENTS


def _headers(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


async def _submit(conn: Conn, key: str | None) -> str:
    reply = await conn.call(
        "POST",
        "/v1/jobs",
        multipart(CHECKSUM),
        f"multipart/form-data; boundary={BOUNDARY}",
        _headers(key),
    )
    if reply.status != 202:
        raise RuntimeError(f"submit: {reply.status} {reply.body[:300]!r}")
    return str(json.loads(reply.body)["id"])


async def _submits(port: int, n: int, key: str | None) -> tuple[float, list[str]]:
    """8 clients submit `n` files: (seconds from the first submit to the last 202, ids)."""
    conns = [await Conn.open(port) for _ in range(CLIENTS)]
    t0 = time.monotonic()

    async def client(conn: Conn, k: int) -> list[str]:
        return [await _submit(conn, key) for _ in range(k, n, CLIENTS)]

    try:
        done = await asyncio.gather(*(client(c, k) for k, c in enumerate(conns)))
    finally:
        for conn in conns:
            conn.close()
    return time.monotonic() - t0, [job_id for ids in done for job_id in ids]


async def _await_jobs(port: int, ids: list[str], key: str | None) -> None:
    """Until every job in `ids` is final (polled every 20 ms)."""
    conn = await Conn.open(port)
    try:
        for job_id in ids:
            while True:
                reply = await conn.call("GET", f"/v1/jobs/{job_id}", headers=_headers(key))
                if json.loads(reply.body)["status"] in FINAL:
                    break
                await asyncio.sleep(0.02)
    finally:
        conn.close()


class Side:
    """One server under test: this checkout, or the package under another source root."""

    def __init__(self, name: str, source: Path | None, scratch: Path, keyed: bool) -> None:
        self.name = name
        env = filejob_env(scratch / name, fsync=True)
        if source is not None:
            env["PYTHONPATH"] = str(source)
        run = [*filejob_command()]
        subprocess.run([*run, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        self.key = self._make_key(run, env) if keyed else None
        port = free_port()
        argv = [*run, "serve", "--host", HOST, "--port", str(port)]
        self.server: Server = start_server(name, argv, env, port, scratch, "/healthz")

    @staticmethod
    def _make_key(run: list[str], env: dict[str, str]) -> str:
        limits = ["--max-active-jobs", "100000", "--max-storage-bytes", str(1 << 40)]
        out = subprocess.run(
            [*run, "keys", "create", "--name", "bench", *limits, "--rate-limit", "0"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if "api key" in line)

    def measure(self, n: int, after: Callable[[], None] = lambda: None) -> tuple[float, float]:
        """(submits/s, CPU ms per submit) of `n` submits; calls `after` once the last 202
        came, then waits for their jobs."""
        pid, port = self.server.pid, self.server.port
        cpu0 = proc_cpu_seconds(pid)
        seconds, ids = asyncio.run(_submits(port, n, self.key))
        cpu = proc_cpu_seconds(pid) - cpu0
        after()
        asyncio.run(_await_jobs(port, ids, self.key))
        return n / seconds, cpu * 1000 / n

    def stop(self) -> None:
        stop_server(self.server)


def profile(side: Side, n: int, out: Path) -> None:
    argv = [str(ROOT / ".venv/bin/py-spy"), "record", "--gil", "-f", "raw", "-r", "250"]
    argv += ["-o", str(out), "-p", str(side.server.pid)]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:  # the submits only, not the wait for their jobs
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            spy.wait(timeout=30)

    try:
        time.sleep(1.0)  # py-spy attached
        rate, cpu = side.measure(n, after=stop)
        print(f"profiled {side.name}: {rate:.0f} submits/s, {cpu:.2f} ms CPU/submit -> {out}")
    finally:
        stop()


def median(values: list[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(statistics.median(values))} [{fmt(min(values))}-{fmt(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submits", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, help="source root of the package to compare")
    parser.add_argument("--keyed", action="store_true", help="submit with a limited API key")
    parser.add_argument("--profile", type=Path, help="py-spy raw output of the last server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="filejob-submits-") as tmp:
        scratch = Path(tmp)
        sides: list[Side] = []
        try:
            if args.base:
                sides.append(Side("base", args.base.resolve(), scratch, args.keyed))
            sides.append(Side("this", None, scratch, args.keyed))
            for side in sides:
                side.measure(WARM_UP)
            results: dict[str, list[tuple[float, float]]] = {s.name: [] for s in sides}
            for round_no in range(args.rounds):
                order = sides if round_no % 2 == 0 else sides[::-1]
                for side in order:
                    rate, cpu = side.measure(args.submits)
                    results[side.name].append((rate, cpu))
                    print(f"round {round_no + 1} {side.name:5} {rate:7.0f}/s {cpu:6.2f} ms CPU")
            print(f"\n{'side':5} {'submits/s':>22} {'CPU ms/submit':>24}  (median [min-max])")
            for name, figures in results.items() if args.rounds else ():
                rates, cpus = [r for r, _ in figures], [c for _, c in figures]
                print(
                    f"{name:5} {median(rates, lambda v: f'{v:.0f}'):>22} "
                    f"{median(cpus, lambda v: f'{v:.2f}'):>24}"
                )
            if args.profile:
                profile(sides[-1], args.submits, args.profile)
        finally:
            for side in sides:
                side.stop()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
