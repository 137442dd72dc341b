"""The `filejob` client commands against a real server: files, exit codes, plain and JSON
output (stdout is a pipe here, so no progress bars), errors as one line. The other
test_live_cli_*.py files run their own servers with `cli_server` and `cli` from here."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import submit_bytes, wait_final
from tests.support.servers import (
    FILEJOB,
    LIVE_SECRET,
    LiveServer,
    create_key,
    processors_pythonpath,
    start_server,
    stop_server,
)


def cli_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live server that also offers the tests' processors (slow, crash, flaky)."""
    root = tmp_path_factory.mktemp("cli")
    env = {"PYTHONPATH": processors_pythonpath(root)}
    process, url = start_server(root / "data", root / "server.log", env)
    try:
        yield LiveServer(url, process.pid, root / "data")
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from cli_server(tmp_path_factory)


def cli(
    server: LiveServer, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`filejob *args` against `server`, to its end, with no terminal (stdin included)."""
    environment = {**os.environ, "FILEJOB_SERVER": server.url, **env}
    environment.pop("FILEJOB_API_KEY", None)
    return subprocess.run(
        [FILEJOB, *args],
        env=environment,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_submit_several_files_wait_and_download(server: LiveServer, tmp_path: Path) -> None:
    inputs = {"a.bin": os.urandom(300_000), "b.txt": b"hello\n" * 50_000}
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "out"
    result = cli(
        server, "submit", "a.bin", "b.txt", "-p", "compress", "-P", "format=gzip",
        "-P", "level=1", "--output", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout  # plain text: stdout is not a terminal
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(status, file) for _, status, file, _ in lines] == [
        ("succeeded", "a.bin"),
        ("succeeded", "b.txt"),
    ]
    for name, data in inputs.items():
        assert gzip.decompress((out / f"{name}.gz").read_bytes()) == data
    assert not list(out.glob("*.part"))


def test_submit_json_without_wait(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"x" * 1000)
    result = cli(server, "submit", str(tmp_path / "in.bin"), "-p", "checksum", "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["job"]["status"] in ("queued", "running", "succeeded") and entry["error"] is None
    status = cli(server, "status", entry["job"]["id"], "--json")
    assert json.loads(status.stdout)["id"] == entry["job"]["id"]


def test_a_refused_submit_prints_the_servers_message(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"x")
    result = cli(server, "submit", str(tmp_path / "in.bin"), "-p", "compress", "-P", "level=99")
    assert result.returncode == 1
    assert "(invalid_params)" in result.stderr and "19" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_job_exits_non_zero_with_its_error(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"x" * 100)
    args = ["-P", "steps=1", "-P", "fail=true"]
    result = cli(server, "submit", str(tmp_path / "in.bin"), "-p", "slow", *args, "--wait")
    assert result.returncode == 1
    assert "failed: asked to fail (asked_to_fail)" in result.stderr
    assert "\tfailed\t" in result.stdout


def test_jobs_status_cancel_and_processors(server: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"y" * 100)
    params = ["-P", "steps=1000", "-P", "step_seconds=0.05"]  # a minute unless cancelled
    submitted = cli(server, "submit", str(tmp_path / "in.bin"), "-p", "slow", *params, "--json")
    job_id = json.loads(submitted.stdout)[0]["job"]["id"]
    cancelled = cli(server, "cancel", job_id)
    assert cancelled.returncode == 0 and job_id in cancelled.stdout
    status = cli(server, "status", job_id)
    assert "status:    cancelled" in status.stdout

    listed = cli(server, "jobs", "--status", "cancelled")
    assert listed.stdout.splitlines()[0].split("\t")[:2] == ["ID", "STATUS"]
    assert any(line.startswith(job_id + "\t") for line in listed.stdout.splitlines())
    names = {p["name"] for p in json.loads(cli(server, "processors", "--json").stdout)}
    assert {"checksum", "compress", "slow"} <= names


def test_an_unreachable_server_is_named_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "FILEJOB_SERVER": "http://127.0.0.1:9"}
    result = subprocess.run([FILEJOB, "jobs"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "filejob: cannot reach http://127.0.0.1:9: connection refused\n"


def test_the_api_key_comes_from_the_environment_or_the_option(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": LIVE_SECRET}
    process, url = start_server(data_dir, tmp_path / "server.log", env)
    try:
        base = {**os.environ, "FILEJOB_DATA_DIR": str(data_dir), **env, "FILEJOB_SERVER": url}
        token = create_key(data_dir, name="cli", **env)

        def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [FILEJOB, *args], env={**base, **extra}, capture_output=True, text=True, timeout=60
            )

        refused = run("jobs")
        assert refused.returncode == 1 and "(unauthorized)" in refused.stderr
        assert run("jobs", FILEJOB_API_KEY=token).returncode == 0
        assert run("jobs", "--api-key", token).returncode == 0
        wrong = run("jobs", "--api-key", "fj_wrong")
        assert wrong.returncode == 1 and "(invalid_api_key)" in wrong.stderr
    finally:
        stop_server(process)


def test_progress_bars_on_a_terminal(server: LiveServer, tmp_path: Path) -> None:
    """Under a pseudo-terminal (util-linux `script`), each upload, job and download gets a bar."""
    import shlex
    import shutil

    script = shutil.which("script")
    assert script, "util-linux `script` is part of every Debian base system"
    (tmp_path / "a.bin").write_bytes(os.urandom(500_000))
    command = shlex.join(
        [FILEJOB, "submit", "a.bin", "-p", "compress", "-P", "format=gzip", "-o", "out/"]
    )
    env = {**os.environ, "FILEJOB_SERVER": server.url, "COLUMNS": "120", "TERM": "xterm"}
    result = subprocess.run(
        [script, "-qec", command, "/dev/null"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    screen = result.stdout
    assert "↑ a.bin" in screen and "⚙ a.bin" in screen and "↓ a.bin.gz" in screen
    assert "━" in screen  # drawn bars
    assert (tmp_path / "out" / "a.bin.gz").exists()


def test_jobs_filters_pages_and_times(server: LiveServer, tmp_path: Path) -> None:
    with server.api() as client:
        ids = [submit_bytes(client, b"%d" % n, "checksum")["id"] for n in range(55)]
        wait_final(client, ids[-1])
    listed = cli(server, "jobs", "--processor", "checksum", "--json")
    assert len(json.loads(listed.stdout)) == 50  # --limit's default
    every = json.loads(cli(server, "jobs", "--processor", "checksum", "--all", "--json").stdout)
    assert [j["id"] for j in every][:55] == ids[::-1]
    assert {j["processor"] for j in every} == {"checksum"}
    assert cli(server, "jobs", "--since", "2h", "--limit", "3", "--json").stdout.count('"id"') == 3
    future = cli(server, "jobs", "--since", "2999-01-01T00:00:00+00:00")
    assert future.returncode == 0 and future.stdout.splitlines() == [
        "ID\tSTATUS\tPROCESSOR\tPROGRESS\tINPUT\tSIZE\tCREATED"
    ]
    piped = cli(server, "jobs", "--limit", "1").stdout.splitlines()[1].split("\t")
    assert piped[0] == ids[-1] and piped[5] == "2 B" and piped[6].endswith("Z")  # ISO in pipes
    bad = cli(server, "jobs", "--since", "yesterday")
    assert bad.returncode == 2 and "neither a duration" in bad.stderr

    # On a terminal, a table with times relative to now.
    import shlex
    import shutil

    script = shutil.which("script")
    assert script
    command = shlex.join([FILEJOB, "jobs", "--limit", "3"])
    env = {**os.environ, "FILEJOB_SERVER": server.url, "COLUMNS": "160", "TERM": "xterm"}
    shown = subprocess.run(
        [script, "-qec", command, "/dev/null"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stdout
    assert ids[-1] in shown.stdout and (" s ago" in shown.stdout or "just now" in shown.stdout)
