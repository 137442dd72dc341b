"""Ctrl+C with real signals: the CLI runs in a process group of its own and gets SIGINT at the
moment under test. Mid-upload, the upload stops and no job is created; while following jobs,
the CLI lets go of them and says how to cancel them. A throttling proxy between the CLI and
the server makes an upload slow enough to be caught midway, and counts what was sent."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import FILEJOB, LiveServer
from tests.support.wait import wait_until
from tests.system.live.test_live_cli import cli_server

INTERRUPTED = 130


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from cli_server(tmp_path_factory)


class Proxy:
    """127.0.0.1:port -> the server, passing what clients send at `rate` bytes per second at
    most (None: unthrottled) and counting it in `sent`."""

    def __init__(self, target: str, rate: int | None = None) -> None:
        host, port = target.removeprefix("http://").rsplit(":", 1)
        self.target = (host, int(port))
        self.rate = rate
        self.sent = 0
        self.closed_by_client = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(16 * 1024 if upward and self.rate else 256 * 1024):
                sink.sendall(data)
                if upward:
                    self.sent += len(data)
                    if self.rate:
                        time.sleep(len(data) / self.rate)
        except OSError:
            pass
        if upward:
            self.closed_by_client.set()
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[Proxy]:
    proxy = Proxy(server.url, rate=2 * 1024 * 1024)
    yield proxy
    proxy.close()


@pytest.fixture
def start_cli() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Starts the CLI in a process group of its own, as a shell starts a foreground command;
    whatever is still running at the end of the test is killed (by its pid)."""
    started: list[subprocess.Popen[str]] = []

    def start(url: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
        env = {**os.environ, "FILEJOB_SERVER": url}
        env.pop("FILEJOB_API_KEY", None)
        process = subprocess.Popen(
            [FILEJOB, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            process_group=0,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def interrupt(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl+C, as a terminal sends it: SIGINT to the process group. Its exit code and output."""
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def jobs_named(server: LiveServer, filename: str) -> list[dict[str, Any]]:
    with server.api() as client:
        return [j for j in client.jobs(limit=500) if j["input"]["filename"] == filename]


def test_ctrl_c_mid_upload_aborts_it_and_creates_no_job(
    server: LiveServer, proxy: Proxy, tmp_path: Path, start_cli: Callable[..., Any]
) -> None:
    with (tmp_path / "cut-upload.bin").open("wb") as file:
        file.truncate(256 * 1024 * 1024)  # two minutes through the proxy: cut well before
    # Kept on the multipart path (a resumable upload is paused, not aborted: see
    # test_live_cli_resumable.py).
    process = start_cli(
        proxy.url,
        "submit",
        "cut-upload.bin",
        "-p",
        "checksum",
        "--resumable-above",
        "1GiB",
        cwd=tmp_path,
    )
    wait_until(lambda: proxy.sent > 1024 * 1024, timeout=60, message="the upload never began")
    code, out, err = interrupt(process)
    assert code == INTERRUPTED, err
    assert err == "filejob: aborted the upload of cut-upload.bin: no job was created\n"
    assert out == ""
    assert proxy.closed_by_client.wait(30)  # the connection was dropped mid-body
    assert proxy.sent < 256 * 1024 * 1024
    assert jobs_named(server, "cut-upload.bin") == []


def test_ctrl_c_while_following_detaches_and_says_how_to_cancel(
    server: LiveServer, tmp_path: Path, start_cli: Callable[..., Any]
) -> None:
    (tmp_path / "held-a.bin").write_bytes(b"a" * 1000)
    (tmp_path / "held-b.bin").write_bytes(b"b" * 1000)
    held = ["-p", "slow", "-P", "steps=1000", "-P", "step_seconds=0.05"]  # a minute each
    process = start_cli(server.url, "submit", "held-a.bin", "held-b.bin", *held, "--wait",
                        cwd=tmp_path)  # fmt: skip

    def both_running() -> list[str] | None:
        jobs = jobs_named(server, "held-a.bin") + jobs_named(server, "held-b.bin")
        running = [str(j["id"]) for j in jobs if j["status"] == "running"]
        return running if len(running) == 2 else None

    ids = wait_until(both_running, timeout=60, message="the jobs never ran")
    code, out, err = interrupt(process)
    assert code == INTERRUPTED, err
    printed = {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}
    # Each as the CLI last saw it: on a loaded machine its follow may not have had the
    # `running` of a job the server started a moment ago.
    assert set(printed) == set(ids)
    assert all(status in ("queued", "running") for status, _ in printed.values()), printed
    assert "these jobs keep running on the server" in err
    [hint] = [line for line in err.splitlines() if "filejob cancel" in line]
    assert sorted(hint.split("filejob cancel ")[1].split()) == sorted(ids)
    with server.api() as client:
        assert [client.job(job_id)["status"] for job_id in ids] == ["running", "running"]
        for job_id in ids:
            client.cancel(job_id)


def test_nothing_is_sent_before_the_server_has_said_yes(
    server: LiveServer, proxy: Proxy, tmp_path: Path, start_cli: Callable[..., Any]
) -> None:
    """An unknown processor and a file over the upload limit are refused from what the server
    says of itself (GET /v1/processors, /v1/limits): the proxy sees no upload go by."""
    with (tmp_path / "never-sent.bin").open("wb") as file:
        file.truncate(1024**3 + 1)
    for args in (["-p", "compres"], ["-p", "checksum"]):
        process = start_cli(proxy.url, "submit", "never-sent.bin", *args, cwd=tmp_path)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 1 and err.endswith("nothing was uploaded\n"), err
    assert 0 < proxy.sent < 64 * 1024  # a few GET requests, no body
