"""A stop signal sent to a server's whole process group (Ctrl+C in its terminal, `kill -TERM
-<pgid>`), or to every process it has (systemd's default KillMode=control-group), means the
same drain as one sent to the server alone: the processor children, supervised by their
parent, do not act on it. And a child killed by a signal the server did not send (the OOM
killer) is an interrupted attempt: the job is retried, and succeeds.

Real `filejob serve` and `filejob worker` processes, each started in a session and process
group of its own; the jobs run `slow-child`, a slow copy in a child process."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest

from filejob.client.api import FilejobClient
from tests.support.jobs import submit_slow, wait_final, wait_running
from tests.support.servers import (
    processors_pythonpath,
    start_server,
    start_worker,
    stop_server,
)
from tests.support.services import postgres_database
from tests.support.storage import job_states

CHILD = "slow-child"  # the jobs' processor: a slow copy in a child process


def forkserver_children(server_pid: int) -> list[psutil.Process]:
    """The processor children: those of the server's multiprocessing forkserver."""
    for child in psutil.Process(server_pid).children():
        if any("multiprocessing.forkserver" in part for part in child.cmdline()):
            return child.children()
    return []


def blocked_stop_signals(process: psutil.Process) -> set[signal.Signals]:
    """Which of SIGINT and SIGTERM `process` blocks (Linux: its SigBlk mask)."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {sig for sig in (signal.SIGINT, signal.SIGTERM) if mask & (1 << (sig - 1))}


def signal_group_or_each(pid: int, sig: signal.Signals, target: str) -> None:
    """`group`: one kill() to the process group `pid` leads. `each`: the signal to every
    process of the tree separately, as systemd's KillMode=control-group sends it."""
    if target == "group":
        os.killpg(pid, sig)
        return
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(processes) >= 3  # the server, its forkserver, at least one processor child
    for process in processes:
        process.send_signal(sig)


@pytest.mark.parametrize(
    ("sig", "target"),
    [
        (signal.SIGTERM, "group"),  # kill -TERM -<pgid>, docker stop through a group init
        (signal.SIGINT, "group"),  # Ctrl+C in the terminal running `filejob serve`
        (signal.SIGTERM, "each"),  # systemctl stop with KillMode=control-group
    ],
)
def test_a_stop_signal_to_the_whole_group_drains_like_one_to_the_server(
    tmp_path: Path, sig: signal.Signals, target: str
) -> None:
    data_dir = tmp_path / "data"
    env = {
        "PYTHONPATH": processors_pythonpath(tmp_path),
        "FILEJOB_WORKERS": "3",
        "FILEJOB_SHUTDOWN_GRACE": "3",
    }
    process, url = start_server(data_dir, tmp_path / "server.log", env, start_new_session=True)
    try:
        with FilejobClient(url, timeout=30) as client:
            short = submit_slow(client, 40, CHILD)  # ~2 s: finishes within the grace period
            long = [submit_slow(client, 160, CHILD) for _ in range(2)]  # ~8 s: do not
            wait_running(client, [short, *long])
            assert len(forkserver_children(process.pid)) >= 2
            signal_group_or_each(process.pid, sig, target)
            assert process.wait(timeout=60) == 0
    finally:
        stop_server(process)

    after = job_states(data_dir)
    assert after[short] == ("succeeded", 1)
    assert all(after[job_id] == ("queued", 0) for job_id in long), after  # attempt given back

    process, url = start_server(data_dir, tmp_path / "server2.log", env)
    try:
        with FilejobClient(url, timeout=30) as client:
            for job_id in long:
                job = wait_final(client, job_id, timeout=120)
                assert (job["status"], job["attempts"]) == ("succeeded", 1), job
    finally:
        stop_server(process)


def test_a_child_killed_from_outside_is_retried(tmp_path: Path) -> None:
    env = {
        "PYTHONPATH": processors_pythonpath(tmp_path),
        "FILEJOB_RETRY_BASE_DELAY": "0.1",
        "FILEJOB_RETRY_MAX_DELAY": "0.2",
    }
    process, url = start_server(tmp_path / "data", tmp_path / "server.log", env)
    try:
        with FilejobClient(url, timeout=30) as client:
            job_id = submit_slow(client, 40, CHILD)
            wait_running(client, [job_id])
            (child,) = forkserver_children(process.pid)
            child.send_signal(signal.SIGKILL)  # as the OOM killer would
            job = wait_final(client, job_id)
            assert (job["status"], job["attempts"]) == ("succeeded", 2), job
            assert process.poll() is None  # the server itself was not touched
    finally:
        stop_server(process)


def test_children_still_die_with_the_server(tmp_path: Path) -> None:
    """Shielded from stop signals, a child still ends when its server does, however it ends:
    the forkserver exits once the server is gone, and its children follow (PDEATHSIG)."""
    env = {"PYTHONPATH": processors_pythonpath(tmp_path)}
    process, url = start_server(tmp_path / "data", tmp_path / "server.log", env)
    try:
        with FilejobClient(url, timeout=30) as client:
            job_id = submit_slow(client, 2000, CHILD)
            wait_running(client, [job_id])
        server = psutil.Process(process.pid)
        helpers = server.children(recursive=True)  # forkserver, child, resource tracker
        (child,) = forkserver_children(process.pid)
        # The shield: the forkserver and its children block the stop signals, the server not.
        both = {signal.SIGINT, signal.SIGTERM}
        assert blocked_stop_signals(child) == blocked_stop_signals(child.parent()) == both
        assert blocked_stop_signals(server) == set()
        process.kill()
        process.wait(timeout=10)
        _, alive = psutil.wait_procs(helpers, timeout=20)
        assert alive == []
    finally:
        stop_server(process)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """An API server and the environment of workers, on one PostgreSQL database (the files
    in one local folder, which every process of this machine shares)."""
    with postgres_database() as database_url:
        env = {
            "PYTHONPATH": processors_pythonpath(tmp_path),
            "FILEJOB_DATABASE_URL": database_url,
            "FILEJOB_EXECUTOR": "procrastinate",
            "FILEJOB_SHUTDOWN_GRACE": "1",
        }
        process, url = start_server(tmp_path / "data", tmp_path / "server.log", env)
        try:
            yield env, url
        finally:
            stop_server(process)


def start_grouped_worker(data_dir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One job at a time, in a process group of its own, as a service manager starts it."""
    env = {"FILEJOB_DATA_DIR": str(data_dir), **env}
    return start_worker(env, log, concurrency=1, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_a_workers_group_hands_its_job_to_another_worker(
    tmp_path: Path, cluster: tuple[dict[str, str], str], sig: signal.Signals
) -> None:
    env, url = cluster
    data_dir = tmp_path / "data"
    workers = [start_grouped_worker(data_dir, env, tmp_path / f"worker{n}.log") for n in range(2)]
    try:
        with FilejobClient(url, timeout=30) as client:
            jobs = [submit_slow(client, 100, CHILD) for _ in range(2)]  # ~5 s: one each
            wait_running(client, jobs)
            assert all(len(forkserver_children(w.pid)) == 1 for w in workers)
            os.killpg(workers[0].pid, sig)
            assert workers[0].wait(timeout=60) == 0
            for job_id in jobs:
                job = wait_final(client, job_id, timeout=120)
                assert (job["status"], job["attempts"]) == ("succeeded", 1), job
    finally:
        for worker in workers:
            stop_worker(worker)
