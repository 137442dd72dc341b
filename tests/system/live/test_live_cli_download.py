"""`filejob download`, `status --watch` and `link` against a real server: a part file is
resumed only under the validator it was fetched with, a stale one starts over; an existing
file is not overwritten without --clobber; --wait and --watch follow a job to its end."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.jobs import submit_bytes, wait_final
from tests.support.servers import LiveServer
from tests.system.live.test_live_cli import cli, cli_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from cli_server(tmp_path_factory)


def finished(server: LiveServer, data: bytes, processor: str = "compress") -> dict[str, Any]:
    """A job of `processor` on `data`, once final, with its result's bytes as `whole`."""
    with server.api() as client:
        params = {"format": "zstd"} if processor == "compress" else {}
        job = wait_final(client, submit_bytes(client, data, processor, params)["id"])
        assert job["status"] == "succeeded"
        with server.client() as http:
            job["whole"] = http.get(job["result"]["url"]).content
    return job


def test_a_cut_download_resumes_under_its_validator(server: LiveServer, tmp_path: Path) -> None:
    job = finished(server, os.urandom(2_000_000))
    whole, dest = job["whole"], tmp_path / "result.zst"
    part, tag = tmp_path / "result.zst.part", tmp_path / "result.zst.part.etag"
    etag = f'"{job["result"]["sha256"]}"'  # what the result answers as its ETag

    # A cut download left half the bytes and their validator: only the rest is fetched.
    part.write_bytes(whole[: len(whole) // 2])
    tag.write_text(etag)
    result = cli(server, "download", job["id"], "-o", str(dest))
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == whole and not part.exists() and not tag.exists()

    # The proof that the part was trusted: wrong bytes under the right validator are resumed
    # from, so the sha256 check refuses the file, and the next try starts afresh.
    dest.unlink()
    part.write_bytes(b"garbage" * 100)
    tag.write_text(etag)
    refused = cli(server, "download", job["id"], "-o", str(dest))
    assert refused.returncode == 1 and "sha256 differs" in refused.stderr
    assert not dest.exists() and not part.exists() and not tag.exists()
    again = cli(server, "download", job["id"], "-o", str(dest), "--json")
    assert again.returncode == 0 and dest.read_bytes() == whole
    assert json.loads(again.stdout)["sha256"] == job["result"]["sha256"]


@pytest.mark.parametrize("validator", ["another result's", "none"])
def test_a_stale_part_starts_over(server: LiveServer, tmp_path: Path, validator: str) -> None:
    """A part left by another result (its validator differs: the server answers 200, not 206)
    or by something that kept no validator: the download starts over and succeeds."""
    other = finished(server, os.urandom(300_000))
    job = finished(server, os.urandom(1_000_000))
    dest = tmp_path / "result.zst"
    (tmp_path / "result.zst.part").write_bytes(other["whole"][:100_000])
    if validator != "none":
        (tmp_path / "result.zst.part.etag").write_text(f'"{other["result"]["sha256"]}"')
    result = cli(server, "download", job["id"], "-o", str(dest))
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == job["result"]["sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.zst"]


def test_an_existing_file_is_kept_without_clobber(server: LiveServer, tmp_path: Path) -> None:
    job = finished(server, b"keep me" * 1000, "checksum")
    dest = tmp_path / job["result"]["filename"]
    dest.write_bytes(b"mine")
    refused = cli(server, "download", job["id"], cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr == f"filejob: {dest.name} exists (--clobber overwrites it)\n"
    assert dest.read_bytes() == b"mine"
    assert not (tmp_path / f"{dest.name}.part").exists()
    done = cli(server, "download", job["id"], "--clobber", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == job["whole"]


def test_download_wait_follows_the_job_first(server: LiveServer, tmp_path: Path) -> None:
    data = os.urandom(64 * 1024)
    with server.api() as client:
        job = submit_bytes(client, data, "slow", {"steps": 100, "step_seconds": 0.05})  # 5 s
    assert job["status"] in ("queued", "running")
    early = cli(server, "download", job["id"], "-o", str(tmp_path / "early"))
    assert early.returncode == 1 and "has no result to download" in early.stderr
    result = cli(server, "download", job["id"], "--wait", "-o", str(tmp_path / "out.bin"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.bin").read_bytes() == data  # `slow` copies its input


def test_status_watch_prints_each_change_until_final(server: LiveServer) -> None:
    with server.api() as client:
        ok = submit_bytes(client, b"w" * 4000, "slow", {"steps": 10, "step_seconds": 0.05})
        bad = submit_bytes(client, b"w", "slow", {"steps": 1, "step_seconds": 0, "fail": True})
    watched = cli(server, "status", ok["id"], "--watch")
    assert watched.returncode == 0, watched.stderr
    lines = [line.split("\t") for line in watched.stdout.splitlines()]
    assert lines[-1] == [ok["id"], "succeeded", "100%"]
    assert all(line[0] == ok["id"] for line in lines) and len(lines) == len(
        {tuple(line) for line in lines}
    )
    failed = cli(server, "status", bad["id"], "--watch", "--json")
    assert failed.returncode == 1
    assert "failed: asked to fail (asked_to_fail)" in failed.stderr
    assert json.loads(failed.stdout.splitlines()[-1])["status"] == "failed"  # JSON Lines


def test_link_prints_a_url_that_works_without_a_key(server: LiveServer, tmp_path: Path) -> None:
    job = finished(server, b"linked" * 500, "checksum")
    printed = cli(server, "link", job["id"], "--ttl", "10m")
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert url.startswith(server.url + "/v1/jobs/" + job["id"] + "/result?")
    assert httpx.get(url, timeout=30).content == job["whole"]
    as_json = json.loads(cli(server, "link", job["id"], "--json").stdout)
    assert set(as_json) == {"id", "url", "expires_at"} and as_json["id"] == job["id"]
    unknown = cli(server, "link", "nope")
    assert unknown.returncode == 1 and "(job_not_found)" in unknown.stderr
