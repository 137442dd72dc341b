"""A real `filejob serve` in a subprocess on 127.0.0.1, stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, listens_on

FILEJOB = str(Path(sys.executable).with_name("filejob"))


@dataclass
class LiveServer:
    url: str
    pid: int
    data_dir: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]


REPO = Path(__file__).resolve().parents[3]


def test_processors_on_path(root: Path) -> str:
    """A PYTHONPATH under which a server also offers the tests' processors (slow, crash, flaky),
    registered through a real entry-point distribution, as third-party plugins are."""
    dist = root / "plugins" / "filejob_test_processors-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: filejob-test-processors\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[filejob.processors]\n"
        "slow = tests.support:Slow\n"
        "crash = tests.support:Crash\n"
        "flaky = tests.support:Flaky\n"
        "slow-child = tests.support:SlowChild\n"
    )
    return os.pathsep.join([str(REPO), str(root / "plugins")])


test_processors_on_path.__test__ = False  # type: ignore[attr-defined]


BIND_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """The chosen port was taken by another process before the server bound it."""


def start_server(
    data_dir: Path, log: Path, *, start_new_session: bool = False, **env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`filejob serve` on a free port; `start_new_session`: in a session and process group of
    its own (its PID is the group's id), as a service manager or a terminal would start it."""
    environment = {
        **os.environ,
        "FILEJOB_DATA_DIR": str(data_dir),
        "FILEJOB_WORKERS": "2",
        "FILEJOB_FSYNC": "false",
        "FILEJOB_MIN_FREE_BYTES": "0",
        "FILEJOB_LOG_LEVEL": "warning",
        **env,
    }
    subprocess.run([FILEJOB, "db", "upgrade"], env=environment, check=True, capture_output=True)
    for _ in range(BIND_ATTEMPTS - 1):
        try:
            return _serve(environment, log, start_new_session)
        except PortTaken:
            continue  # a port free when chosen can be taken before uvicorn binds it
    return _serve(environment, log, start_new_session)


def _serve(
    environment: dict[str, str], log: Path, start_new_session: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    logged = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [FILEJOB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=start_new_session,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_bytes()[logged:].decode(errors="replace")
            if "address already in use" in output:
                raise PortTaken(output)
            raise RuntimeError(f"server exited: {output}")
        try:
            # Another process that took the port first would answer too: the server is up
            # when it answers and the port is its own.
            answered = httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            answered = False
        if answered and listens_on(process.pid, port):
            return process, url
        time.sleep(0.05)
    stop_server(process)
    raise RuntimeError("server did not start in 30 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    data_dir = root / "data"
    process, url = start_server(data_dir, root / "server.log")
    try:
        yield LiveServer(url, process.pid, data_dir)
    finally:
        stop_server(process)


def wait_final(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled", "expired"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not final after {timeout}s")
