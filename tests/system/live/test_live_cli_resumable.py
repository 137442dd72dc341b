"""`filejob submit` against a live server through a relay (tests/support/relay.py) that sees
every request: files above --resumable-above go by tus, a cut mid-PATCH is resumed from the
server's offset, Ctrl+C leaves the upload for the same command to resume (only the rest is
sent), and a submit whose answer was lost is tried again with its Idempotency-Key and makes
one job. The URL storage lives in each test's own XDG_CACHE_HOME."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.relay import Relay
from tests.support.servers import FILEJOB, LiveServer
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]
MiB = 1 << 20
INTERRUPTED = 130
TUS = ["-p", "checksum", "--resumable-above", "1MiB"]


@pytest.fixture
def relay(live: LiveServer) -> Iterator[Relay]:
    forward = Relay(live.url)
    yield forward
    forward.close()


def environment(server: str, cache: Path) -> dict[str, str]:
    env = {**os.environ, "FILEJOB_SERVER": server, "XDG_CACHE_HOME": str(cache)}
    env.pop("FILEJOB_API_KEY", None)
    return env


def cli(server: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FILEJOB, *args],
        env=environment(server, cwd / "cache"),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def random_file(path: Path, size: int) -> str:
    """A file of `size` random bytes; its sha256."""
    content = os.urandom(size)
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def kept_uploads(cwd: Path) -> list[str]:
    """The upload URLs the CLI keeps for resuming (one JSON file each)."""
    folder = cwd / "cache" / "filejob" / "uploads"
    stores = sorted(folder.glob("*.json")) if folder.exists() else []
    return [json.loads(store.read_text())["url"] for store in stores]


def final(live: LiveServer, job_id: str) -> dict[str, Any]:
    with live.api() as client:

        def ended() -> dict[str, Any] | None:
            job = client.job(job_id)
            return job if job["status"] in ("succeeded", "failed") else None

        return wait_until(ended, timeout=60)


def test_a_file_above_the_threshold_goes_by_tus(
    live: LiveServer, relay: Relay, tmp_path: Path
) -> None:
    big = random_file(tmp_path / "big.bin", 3 * MiB + 5)
    random_file(tmp_path / "small.bin", MiB)  # at the threshold: multipart
    done = cli(relay.url, "submit", "big.bin", "small.bin", *TUS, "-o", "out/", "--json",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = {Path(e["file"]).name: e for e in json.loads(done.stdout)}
    assert {name: e["job"]["status"] for name, e in entries.items()} == {
        "big.bin": "succeeded",
        "small.bin": "succeeded",
    }
    assert entries["big.bin"]["job"]["input"]["sha256"] == big
    assert entries["big.bin"]["job"]["input"]["filename"] == "big.bin"
    assert json.loads((tmp_path / "out" / "big.bin.checksum.json").read_text())
    assert relay.requests.count("POST /v1/uploads") == 1
    assert any(r.startswith("PATCH /v1/uploads/") for r in relay.requests)
    assert relay.requests.count("POST /v1/jobs") == 1  # small.bin's
    assert kept_uploads(tmp_path) == []  # the job is known: nothing left to resume


def test_a_cut_mid_patch_is_resumed_from_the_servers_offset(
    live: LiveServer, relay: Relay, tmp_path: Path
) -> None:
    size = 8 * MiB
    digest = random_file(tmp_path / "cut.bin", size)
    relay.cut_at = 5 * MiB  # the first PATCH (the whole file) is cut after about 5 MiB
    done = cli(relay.url, "submit", "cut.bin", *TUS, "--wait", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert entry["job"]["status"] == "succeeded"
    assert entry["job"]["input"]["sha256"] == digest
    assert relay.cuts == 1
    patches = [r for r in relay.requests if r.startswith("PATCH ")]
    assert len(patches) >= 2 and relay.offsets[0] == 0
    assert relay.offsets[-1] > 0  # resumed from what the server kept, not from 0
    assert relay.sent < 2 * size
    assert relay.requests.count("POST /v1/uploads") == 1


def test_ctrl_c_pauses_and_the_same_command_resumes(
    live: LiveServer, relay: Relay, tmp_path: Path
) -> None:
    size = 24 * MiB
    digest = random_file(tmp_path / "paused.bin", size)
    relay.rate = 2 * MiB  # seconds of upload: caught midway
    command = [FILEJOB, "submit", "paused.bin", *TUS, "--json"]
    process = subprocess.Popen(
        command,
        env=environment(relay.url, tmp_path / "cache"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # Ctrl+C reaches a terminal's foreground process group
    )
    try:
        wait_until(lambda: relay.sent > 3 * MiB, timeout=60, message="the upload never began")
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == INTERRUPTED, err
    assert "filejob: paused the upload of paused.bin" in err
    assert "the same command resumes it" in err
    [url] = kept_uploads(tmp_path)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        path = httpx.URL(url).path

        def offset() -> int:
            return int(http.get(path).json()["offset"])

        kept = wait_until(offset, timeout=30, message="the server kept nothing of the upload")
    assert 0 < kept < size

    relay.rate = None
    relay.reset()
    again = cli(relay.url, *command[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    [entry] = json.loads(again.stdout)
    assert entry["job"]["input"]["sha256"] == digest
    assert "POST /v1/uploads" not in relay.requests  # the same upload, resumed
    assert relay.offsets and relay.offsets[0] >= kept
    assert relay.sent < size - kept + 256 * 1024  # the rest, and a few requests' heads
    assert final(live, entry["job"]["id"])["status"] == "succeeded"
    assert kept_uploads(tmp_path) == []


def test_a_submit_whose_answer_is_lost_makes_one_job(
    live: LiveServer, relay: Relay, tmp_path: Path
) -> None:
    random_file(tmp_path / "answer-lost.bin", 200_000)
    relay.swallow_job_answer = True  # the server makes the job; its 202 never arrives
    done = cli(relay.url, "submit", "answer-lost.bin", "-p", "checksum", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert relay.swallowed == 1
    assert relay.requests.count("POST /v1/jobs") == 2  # tried again, with the same key
    with live.api() as client:
        made = [j["id"] for j in client.jobs(limit=500) if j["input"]["filename"] == entry["file"]]
    assert made == [entry["job"]["id"]]


def test_the_cli_pages_resumable_examples_run_as_written(
    live: LiveServer, relay: Relay, tmp_path: Path
) -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    block = text.split("<!-- cli-resumable-examples")[1].split("<!-- /cli-resumable-examples")[0]
    script = block.split("```sh\n", 1)[1].rsplit("```", 1)[0]
    script = script.replace("http://127.0.0.1:8000", relay.url)
    assert relay.url in script
    for name in ("README.md", "Makefile"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = environment(relay.url, tmp_path / "cache")
    env["PATH"] = f"{Path(FILEJOB).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\tsucceeded\t") == 3
    for name in ("README.md", "Makefile"):
        assert (
            gzip.decompress((tmp_path / "out" / f"{name}.gz").read_bytes())
            == (ROOT / name).read_bytes()
        )
    assert relay.requests.count("POST /v1/uploads") == 2  # README.md, twice
    assert relay.requests.count("POST /v1/jobs") == 1  # Makefile, under 4 KiB
