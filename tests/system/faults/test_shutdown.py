"""SIGTERM to a real server with jobs in flight: drain, finish what fits, keep the rest."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from filejob.client.api import FilejobClient
from tests.support.jobs import submit_slow, wait_final
from tests.support.servers import processors_pythonpath, start_server, stop_server
from tests.support.storage import job_states
from tests.support.wait import wait_until


def test_sigterm_drains_then_exits_zero_and_nothing_is_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "PYTHONPATH": processors_pythonpath(tmp_path),
        "FILEJOB_WORKERS": "2",
        "FILEJOB_SHUTDOWN_GRACE": "2",
    }
    process, url = start_server(data_dir, tmp_path / "server.log", env)
    try:
        with FilejobClient(url, timeout=30) as client:
            short = submit_slow(client, 10)  # ~0.5 s: finishes within the grace period
            long = submit_slow(client, 100)  # ~5 s: does not
            waiting = submit_slow(client, 10)  # no free worker: still queued at SIGTERM
            wait_until(
                lambda: all(client.job(j)["status"] == "running" for j in (short, long)),
                timeout=30,
            )

            os.kill(process.pid, signal.SIGTERM)
            # While draining: uploads refused before their body is read, status still served.
            # (One that arrives before the server has handled the signal is accepted, and
            # must then be kept like any other.) Raw HTTP: the status and headers are the test.
            early: list[str] = []

            def refused_while_draining() -> httpx.Response | None:
                response = client.http.post(
                    "/v1/jobs", data={"processor": "checksum"}, files={"file": ("a", b"x")}
                )
                if response.status_code == 202:
                    early.append(response.json()["id"])
                return response if response.status_code == 503 else None

            refused = wait_until(refused_while_draining, timeout=30)
            assert refused.json()["code"] == "shutting_down"
            assert refused.headers["retry-after"]
            assert client.http.get(f"/v1/jobs/{long}").status_code == 200
        assert process.wait(timeout=30) == 0
    finally:
        stop_server(process)

    after = job_states(data_dir)
    assert after[short] == ("succeeded", 1)
    assert after[long] == ("queued", 0)  # stopped by us: the attempt is given back
    assert after[waiting] == ("queued", 0)
    assert all(after[j][0] in ("queued", "succeeded") for j in early)
    assert len(after) == 3 + len(early)  # the refused upload left no row
    assert [p for p in (data_dir / "tmp").iterdir() if not p.name.startswith(".")] == []

    # The next start finishes what was left.
    process, url = start_server(data_dir, tmp_path / "server2.log", env)
    try:
        with FilejobClient(url, timeout=30) as client:
            for job_id in (long, waiting, *early):
                assert wait_final(client, job_id)["status"] == "succeeded"
    finally:
        stop_server(process)
