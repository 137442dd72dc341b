"""SIGTERM to a real server with jobs in flight: drain, finish what fits, keep the rest."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from tests.system.live.conftest import (
    start_server,
    stop_server,
    test_processors_on_path,
    wait_final,
)


def rows(data_dir: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(data_dir / "filejob.db") as db:
        return {i: (s, a) for i, s, a in db.execute("select id, status, attempts from jobs")}


def submit_slow(client: httpx.Client, steps: int) -> str:
    response = client.post(
        "/v1/jobs",
        data={"processor": "slow", "params": f'{{"steps": {steps}, "step_seconds": 0.05}}'},
        files={"file": ("in.bin", os.urandom(64 * 1024))},
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_sigterm_drains_then_exits_zero_and_nothing_is_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "PYTHONPATH": test_processors_on_path(tmp_path),
        "FILEJOB_WORKERS": "2",
        "FILEJOB_SHUTDOWN_GRACE": "2",
    }
    process, url = start_server(data_dir, tmp_path / "server.log", **env)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            short = submit_slow(client, 10)  # ~0.5 s: finishes within the grace period
            long = submit_slow(client, 100)  # ~5 s: does not
            waiting = submit_slow(client, 10)  # no free worker: still queued at SIGTERM
            deadline = time.monotonic() + 30
            while not all(
                client.get(f"/v1/jobs/{j}").json()["status"] == "running" for j in (short, long)
            ):
                assert time.monotonic() < deadline
                time.sleep(0.02)

            os.kill(process.pid, signal.SIGTERM)
            # While draining: uploads refused before their body is read, status still served.
            # (One that arrives before the server has handled the signal is accepted, and
            # must then be kept like any other.)
            refused, early = None, []
            while refused is None and time.monotonic() < deadline:
                response = client.post(
                    "/v1/jobs", data={"processor": "checksum"}, files={"file": ("a", b"x")}
                )
                if response.status_code == 202:
                    early.append(response.json()["id"])
                elif response.status_code == 503:
                    refused = response
                time.sleep(0.02)
            assert refused is not None
            assert refused.json()["code"] == "shutting_down"
            assert refused.headers["retry-after"]
            assert client.get(f"/v1/jobs/{long}").status_code == 200
        assert process.wait(timeout=30) == 0
    finally:
        stop_server(process)

    after = rows(data_dir)
    assert after[short] == ("succeeded", 1)
    assert after[long] == ("queued", 0)  # stopped by us: the attempt is given back
    assert after[waiting] == ("queued", 0)
    assert all(after[j][0] in ("queued", "succeeded") for j in early)
    assert len(after) == 3 + len(early)  # the refused upload left no row
    assert [p for p in (data_dir / "tmp").iterdir() if not p.name.startswith(".")] == []

    # The next start finishes what was left.
    process, url = start_server(data_dir, tmp_path / "server2.log", **env)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for job_id in (long, waiting, *early):
                assert wait_final(client, job_id)["status"] == "succeeded"
    finally:
        stop_server(process)
