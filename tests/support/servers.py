"""Real `filejob` processes on 127.0.0.1: `filejob serve` on a free port, `filejob worker`,
the CLI's own commands; each stopped by its PID."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from filejob.client.api import FilejobClient
from tests.support.ports import free_port, listens_on
from tests.support.wait import wait_until

FILEJOB = str(Path(sys.executable).with_name("filejob"))
REPO = Path(__file__).resolve().parents[2]
# FILEJOB_SECRET_KEY of live servers that require API keys.
LIVE_SECRET = "live-secret-0123456789-abcdefghijklmnop"
BIND_ATTEMPTS = 3


@dataclass
class LiveServer:
    url: str
    pid: int
    data_dir: Path

    def client(self, **kwargs: object) -> httpx.Client:
        """A raw HTTP client, for what the API's own client does not show (headers, status
        codes, streams)."""
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def api(self, api_key: str | None = None) -> FilejobClient:
        """The project's own client of this server."""
        return FilejobClient(self.url, api_key)


class PortTaken(RuntimeError):
    """The chosen port was taken by another process before the server bound it."""


def start_server(
    data_dir: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    start_new_session: bool = False,
) -> tuple[subprocess.Popen[bytes], str]:
    """`filejob db upgrade`, then `filejob serve` on a free port, with `env` on top of quick
    test settings; `start_new_session`: in a session and process group of its own (its PID is
    the group's id), as a service manager or a terminal would start it. Returns the process and
    its URL."""
    environment = {
        **os.environ,
        "FILEJOB_DATA_DIR": str(data_dir),
        "FILEJOB_WORKERS": "2",
        "FILEJOB_FSYNC": "false",
        "FILEJOB_MIN_FREE_BYTES": "0",
        "FILEJOB_LOG_LEVEL": "warning",
        **(env or {}),
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

    def up() -> bool:
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
            return False
        return answered and listens_on(process.pid, port)

    try:
        wait_until(up, timeout=30, interval=0.05)
    except AssertionError:
        stop_server(process)
        raise RuntimeError("server did not start in 30 s") from None
    return process, url


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited in 15 s (servers and workers alike)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: nothing of the process runs to tidy up."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def start_worker(
    env: Mapping[str, str], log: Path, *, concurrency: int = 2, start_new_session: bool = False
) -> subprocess.Popen[bytes]:
    """`filejob worker`; `start_new_session`: in a process group of its own, as a service
    manager would start it."""
    environment = {**os.environ, "FILEJOB_FSYNC": "false", "FILEJOB_LOG_LEVEL": "info", **env}
    with log.open("ab") as out:
        return subprocess.Popen(
            [FILEJOB, "worker", "--concurrency", str(concurrency)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=start_new_session,
        )


def run_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`filejob *args` on `data_dir`, to its end (bounded: 60 s), output captured."""
    environment = {**os.environ, "FILEJOB_DATA_DIR": str(data_dir), **env}
    return subprocess.run(
        [FILEJOB, *args], env=environment, capture_output=True, text=True, timeout=60
    )


def create_key(data_dir: Path, *options: str, name: str = "test", **env: str) -> str:
    """A new API key's token, made with `filejob keys create`, as an operator would."""
    created = run_cli(data_dir, "keys", "create", "--name", name, *options, **env)
    assert created.returncode == 0, created.stderr
    match = re.search(r"^api key:\s+(\S+)$", created.stdout, re.MULTILINE)
    assert match, created.stdout
    return match.group(1)


def processors_pythonpath(root: Path) -> str:
    """A PYTHONPATH under which a server also offers the tests' processors (slow, crash, flaky),
    registered through a real entry-point distribution, as third-party plugins are."""
    dist = root / "plugins" / "filejob_test_processors-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: filejob-test-processors\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[filejob.processors]\n"
        "slow = tests.support.processors:Slow\n"
        "crash = tests.support.processors:Crash\n"
        "flaky = tests.support.processors:Flaky\n"
        "slow-child = tests.support.processors:SlowChild\n"
    )
    return os.pathsep.join([str(REPO), str(root / "plugins")])
