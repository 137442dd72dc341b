"""The same flows against a real server process: sockets, descriptors, disk I/O."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest
from PIL import Image

from filejob.client.api import ApiError
from tests.support.jobs import submit_bytes, wait_final
from tests.support.servers import LiveServer
from tests.support.wait import wait_until


def sample_inputs() -> dict[str, tuple[bytes, dict[str, Any]]]:
    image = io.BytesIO()
    Image.new("RGB", (800, 600), "navy").save(image, "JPEG")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["id", "name", "score"])
    writer.writerows([n, f"name{n}", n * 0.5] for n in range(20_000))
    return {
        "checksum": (os.urandom(5 << 20), {}),
        "compress": (os.urandom(5 << 20), {"format": "gzip", "level": 1}),
        "thumbnail": (image.getvalue(), {"width": 100, "height": 100, "format": "png"}),
        "csv-to-parquet": (table.getvalue().encode(), {}),
    }


@pytest.mark.parametrize("processor", ["checksum", "compress", "thumbnail", "csv-to-parquet"])
def test_each_processor_end_to_end(live: LiveServer, processor: str, tmp_path: Path) -> None:
    content, params = sample_inputs()[processor]
    with live.api() as client:
        accepted = submit_bytes(client, content, processor, params, filename="sample")
        job = wait_final(client, accepted["id"])
        assert job["status"] == "succeeded", job
        result = client.download(job, tmp_path / "result").read_bytes()  # refused: ApiError
        assert hashlib.sha256(result).hexdigest() == job["result"]["sha256"]
        assert len(result) == job["result"]["size"]


def open_fds(pid: int) -> int:
    return psutil.Process(pid).num_fds()


def upload_round(live: LiveServer, count: int) -> None:
    """`count` uploads, 8 at a time, mixing in-memory, on-disk and refused ones; then settle."""
    sizes = [10, 3 << 20, 200_000, 0]

    def one(n: int) -> str | None:
        with live.api() as client:
            size = sizes[n % len(sizes)]
            processor = "checksum" if n % 9 else "nope"
            try:
                return str(submit_bytes(client, os.urandom(size), processor)["id"])
            except ApiError as refused:
                assert refused.status == 422
                return None

    with ThreadPoolExecutor(8) as pool:
        ids = [i for i in pool.map(one, range(count)) if i]
    with live.api() as client:
        for job_id in ids:
            assert wait_final(client, job_id)["status"] == "succeeded"
    time.sleep(0.5)  # let connections close on the server side


def test_no_descriptor_leaks_after_200_uploads(live: LiveServer) -> None:
    upload_round(live, 40)  # warm up: thread pools, database connections
    before = open_fds(live.pid)
    upload_round(live, 200)
    after = open_fds(live.pid)
    assert after == before, psutil.Process(live.pid).open_files()


def raw_get(live: LiveServer, path: str) -> socket.socket:
    host, port = live.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def result_open_in_server(live: LiveServer) -> bool:
    results = str(live.data_dir / "blobs" / "results")
    return any(f.path.startswith(results) for f in psutil.Process(live.pid).open_files())


def big_result_job(live: LiveServer, *, delete_after_download: bool) -> dict[str, Any]:
    content = os.urandom(64 << 20)  # larger than the socket buffers on both sides
    with live.api() as client:
        params = {"format": "zstd", "level": 1}
        accepted = submit_bytes(
            client, content, "compress", params, delete_after_download=delete_after_download
        )
        return wait_final(client, accepted["id"])


def test_interrupted_download_deletes_nothing(live: LiveServer, tmp_path: Path) -> None:
    job = big_result_job(live, delete_after_download=True)
    sock = raw_get(live, job["result"]["url"])
    received = sock.recv(1 << 20)
    assert received.startswith(b"HTTP/1.1 200")
    wait_until(lambda: result_open_in_server(live))
    sock.close()  # walk away mid-body
    wait_until(lambda: not result_open_in_server(live))  # the server has given up on it
    with live.api() as client:
        assert client.job(job["id"])["status"] == "succeeded"
        full = client.download(job, tmp_path / "result").read_bytes()
        assert hashlib.sha256(full).hexdigest() == job["result"]["sha256"]
        # That complete download is the one that cleans up.
        assert client.job(job["id"])["status"] == "expired"
        assert client.http.get(job["result"]["url"]).status_code == 410


def sha256_of_download_while(client: Any, url: str, meanwhile: Any) -> str:
    """Download `url`, running `meanwhile()` once the first MiB has arrived."""
    with client.stream("GET", url) as stream:
        chunks = stream.iter_bytes(1 << 20)
        digest = hashlib.sha256(next(chunks))
        meanwhile()
        for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()


def test_download_in_flight_survives_deletion(live: LiveServer) -> None:
    job = big_result_job(live, delete_after_download=True)
    with live.client() as slow, live.client() as fast:

        def another_client_downloads_it_completely() -> None:
            assert fast.get(job["result"]["url"]).status_code == 200
            assert fast.get(f"/v1/jobs/{job['id']}").json()["status"] == "expired"
            assert not list((live.data_dir / "blobs" / "results").rglob(job["id"]))

        digest = sha256_of_download_while(
            slow, job["result"]["url"], another_client_downloads_it_completely
        )
        assert digest == job["result"]["sha256"]
        gone = fast.get(job["result"]["url"])
        assert gone.status_code == 410 and gone.json()["code"] == "result_gone"


def test_delete_during_download_then_404(live: LiveServer) -> None:
    job = big_result_job(live, delete_after_download=False)
    with live.client() as reader, live.client() as admin:

        def delete_the_job() -> None:
            assert admin.delete(f"/v1/jobs/{job['id']}").status_code == 204

        assert (
            sha256_of_download_while(reader, job["result"]["url"], delete_the_job)
            == (job["result"]["sha256"])
        )
        assert admin.get(job["result"]["url"]).status_code == 404


def write_bytes(pid: int) -> int:
    return psutil.Process(pid).io_counters().write_bytes


def test_upload_bytes_reach_disk_once(live: LiveServer) -> None:
    content = os.urandom(32 << 20)
    with live.api() as client:
        submit_bytes(client, b"warm", "checksum")
        os.sync()
        before = write_bytes(live.pid)
        submit_bytes(client, content, "checksum")  # refused: ApiError
        os.sync()
        written = write_bytes(live.pid) - before
    # A spool-then-copy path writes each byte twice (ratio >= 2); linking writes it once.
    assert written / len(content) < 1.5, written / len(content)
