"""The client commands' manners against a real server: results never race for one name and
never overwrite a file unasked; cancel keeps jobs and says when there was nothing to cancel;
delete asks first; which server is meant, and what it refuses, is said before any upload."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobs import submit_bytes, wait_final, wait_running
from tests.support.servers import FILEJOB, LiveServer
from tests.system.live.test_live_cli import cli, cli_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from cli_server(tmp_path_factory)


def jobs_named(server: LiveServer, filename: str) -> list[dict[str, Any]]:
    """The server's jobs whose input was called `filename`."""
    with server.api() as client:
        return [j for j in client.jobs(limit=500) if j["input"]["filename"] == filename]


# -- names --------------------------------------------------------------------------------


def test_two_results_of_one_name_never_share_a_file(server: LiveServer, tmp_path: Path) -> None:
    inputs = {"a/same.bin": os.urandom(400_000), "b/same.bin": os.urandom(300_000)}
    for name, data in inputs.items():
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_bytes(data)
    args = ["-p", "compress", "-P", "format=gzip", "-o", "out/"]
    result = cli(server, "submit", *inputs, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    written = {file: Path(output) for _, _, file, output in lines}
    assert sorted(p.name for p in written.values()) == ["same (1).bin.gz", "same.bin.gz"]
    for file, output in written.items():
        assert gzip.decompress((tmp_path / output).read_bytes()) == inputs[file]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "same (1).bin.gz",
        "same.bin.gz",
    ]


def test_an_existing_output_file_is_refused_before_uploading(
    server: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "known-dest.txt").write_bytes(b"data" * 100)
    (tmp_path / "out.gz").write_bytes(b"mine")
    args = ["submit", "known-dest.txt", "-p", "compress", "-P", "format=gzip", "-o", "out.gz"]
    refused = cli(server, *args, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == (
        "filejob: out.gz exists (--clobber overwrites it); nothing was uploaded\n"
    )
    assert (tmp_path / "out.gz").read_bytes() == b"mine"
    assert jobs_named(server, "known-dest.txt") == []
    done = cli(server, *args, "--clobber", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert gzip.decompress((tmp_path / "out.gz").read_bytes()) == b"data" * 100


def test_a_file_given_for_the_results_directory_is_refused_before_uploading(
    server: LiveServer, tmp_path: Path
) -> None:
    """Two files' results go into a directory: `-o` naming a plain file is a usage error,
    said before any upload (not a failure to make the directory once the jobs are done)."""
    for name in ("first-of-two.txt", "second-of-two.txt"):
        (tmp_path / name).write_bytes(b"two" * 100)
    (tmp_path / "plain.txt").write_bytes(b"mine")
    refused = cli(server, "submit", "first-of-two.txt", "second-of-two.txt", "-p", "checksum",
                  "-o", "plain.txt", cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr == (
        "filejob: plain.txt is not a directory, and the results go into one; nothing was uploaded\n"
    )
    assert (tmp_path / "plain.txt").read_bytes() == b"mine"
    assert jobs_named(server, "first-of-two.txt") == jobs_named(server, "second-of-two.txt") == []


def test_a_result_named_after_processing_is_not_written_over_a_file(
    server: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "late.txt").write_bytes(b"late" * 100)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "late.txt.gz").write_bytes(b"mine")
    result = cli(server, "submit", "late.txt", "-p", "compress", "-P", "format=gzip", "-o", "out/",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    [(job_id, status, file)] = [line.split("\t") for line in result.stdout.splitlines()]
    assert (status, file) == ("succeeded", "late.txt")  # the job id is printed all the same
    assert f"late.txt: not downloaded: {Path('out/late.txt.gz')} exists" in result.stderr
    assert (tmp_path / "out" / "late.txt.gz").read_bytes() == b"mine"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["late.txt.gz"]
    assert cli(server, "status", job_id).returncode == 0


# -- cancel and delete --------------------------------------------------------------------


def test_cancel_keeps_jobs_and_says_when_there_was_nothing_to_cancel(server: LiveServer) -> None:
    with server.api() as client:
        done = wait_final(client, submit_bytes(client, b"done", "checksum")["id"])
        running = submit_bytes(client, os.urandom(1000), "slow", {"steps": 1000})["id"]
        wait_running(client, [running])
    result = cli(server, "cancel", running, done["id"])
    assert result.returncode == 1  # not every job was cancelled
    assert result.stdout == f"cancelled {running}\n"
    assert result.stderr == f"filejob: {done['id']} already succeeded; nothing to cancel\n"
    with server.api() as client:
        assert client.job(running)["status"] == "cancelled"
        assert client.job(done["id"])["status"] == "succeeded"  # kept, not deleted
    again = cli(server, "cancel", running, "--json")
    assert again.returncode == 1
    [entry] = json.loads(again.stdout)
    assert entry["cancelled"] is False and entry["status"] == "cancelled"
    assert entry["error"]["code"] == "job_final"


def test_delete_needs_yes_without_a_terminal(server: LiveServer) -> None:
    with server.api() as client:
        done = wait_final(client, submit_bytes(client, b"gone", "checksum")["id"])["id"]
        running = submit_bytes(client, os.urandom(1000), "slow", {"steps": 1000})["id"]
    refused = cli(server, "delete", done)
    assert refused.returncode == 2
    assert refused.stderr == "filejob: delete removes jobs for good: confirm with --yes\n"
    result = cli(server, "delete", done, running, "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert [(e["id"], e["deleted"]) for e in json.loads(result.stdout)] == [
        (done, True),
        (running, True),
    ]
    for job_id in (done, running):
        gone = cli(server, "status", job_id)
        assert gone.returncode == 1 and "(job_not_found)" in gone.stderr


@pytest.mark.parametrize("answer", ["y", "n"])
def test_delete_asks_on_a_terminal(server: LiveServer, answer: str) -> None:
    with server.api() as client:
        job_id = wait_final(client, submit_bytes(client, b"ask", "checksum")["id"])["id"]
    primary, secondary = os.openpty()
    env = {**os.environ, "FILEJOB_SERVER": server.url}
    try:
        process = subprocess.Popen(
            [FILEJOB, "delete", job_id],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        os.write(primary, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    assert "Delete job " + job_id + " and their files? [y/N]" in err
    if answer == "y":
        assert process.returncode == 0 and out == f"deleted {job_id}\n"
        assert cli(server, "status", job_id).returncode == 1
    else:
        assert process.returncode == 1 and "nothing deleted" in err
        assert cli(server, "status", job_id).returncode == 0


# -- which server, and what it takes ------------------------------------------------------


def test_the_default_server_is_where_serve_would_listen(server: LiveServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    env = {**os.environ, "FILEJOB_HOST": "0.0.0.0", "FILEJOB_PORT": port}
    env.pop("FILEJOB_SERVER", None)
    found = subprocess.run(
        [FILEJOB, "processors"], env=env, capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found.stderr
    assert "checksum\t" in found.stdout


def test_an_unknown_processor_is_refused_with_a_suggestion(
    server: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "typo.bin").write_bytes(b"t" * 100)
    result = cli(server, "submit", "typo.bin", "-p", "compres", cwd=tmp_path)
    assert result.returncode == 1
    assert "no processor named 'compres'; did you mean 'compress'?" in result.stderr
    assert "this server offers: checksum, compress, crash, csv-to-parquet" in result.stderr
    assert result.stderr.endswith("nothing was uploaded\n")
    assert jobs_named(server, "typo.bin") == []


def test_a_file_over_the_upload_limit_is_refused_in_human_units(
    server: LiveServer, tmp_path: Path
) -> None:
    big = tmp_path / "huge.bin"
    with big.open("wb") as file:
        file.truncate(3 * 1024**3 // 2)  # sparse: 1.5 GiB that take no room
    result = cli(server, "submit", str(big), "-p", "checksum")
    assert result.returncode == 1
    assert f"{big} is 1.5 GiB; this server takes at most 1.0 GiB per upload" in result.stderr
    assert jobs_named(server, "huge.bin") == []


def test_version_and_completion() -> None:
    version = subprocess.run([FILEJOB, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("filejob 0.")
    completion = subprocess.run(
        [FILEJOB, "--show-completion", "bash"], capture_output=True, text=True, timeout=60
    )
    assert completion.returncode == 0 and "_FILEJOB_COMPLETE" in completion.stdout
