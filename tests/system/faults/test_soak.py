"""A bounded soak on 127.0.0.1: 300 uploads from 20 clients while 100 pollers poll."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]  # no stubs installed
import pytest
import zstandard
from PIL import Image

from filejob.client.api import FilejobClient
from tests.support.servers import start_server, stop_server
from tests.support.wait import wait_until

UPLOADERS, UPLOADS, POLLERS = 20, 300, 100


def sample(rng: random.Random) -> tuple[str, dict[str, Any], bytes]:
    kind = rng.randrange(4)
    if kind == 0:
        return "checksum", {}, rng.randbytes(rng.choice([10, 50_000, 600_000]))
    if kind == 1:
        return "compress", {"format": "gzip", "level": 1}, rng.randbytes(200_000)
    if kind == 2:
        return "compress", {"format": "zstd"}, rng.randbytes(300_000)
    image = io.BytesIO()
    Image.new("RGB", (320, 240), (rng.randrange(256), 10, 10)).save(image, "PNG")
    return "thumbnail", {"width": 32, "height": 32}, image.getvalue()


def correct(name: str, params: dict[str, Any], data: bytes, result: bytes) -> bool:
    if name == "checksum":
        return json.loads(result)["sha256"] == hashlib.sha256(data).hexdigest()
    if name == "compress" and params["format"] == "gzip":
        return gzip.decompress(result) == data
    if name == "compress":
        return zstandard.ZstdDecompressor().decompressobj().decompress(result) == data
    return Image.open(io.BytesIO(result)).size[0] <= 32


def round_of_uploads(url: str, count: int, seed: int, statuses: list[int]) -> dict[str, Any]:
    """`count` uploads from UPLOADERS clients while POLLERS poll; returns the accepted jobs."""
    rng = random.Random(seed)
    work = [sample(rng) for _ in range(count)]
    accepted: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def uploader(items: list[tuple[str, dict[str, Any], bytes]]) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for name, params, data in items:
                response = client.post(
                    "/v1/jobs",
                    data={"processor": name, "params": json.dumps(params)},
                    files={"file": ("in", data, "application/octet-stream")},
                )
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 202:
                        accepted[response.json()["id"]] = (name, params, data)

    def poller(seed: int) -> None:
        picker = random.Random(seed)
        with httpx.Client(base_url=url, timeout=60) as client:
            while not done.is_set():
                with lock:
                    ids = list(accepted)
                path = f"/v1/jobs/{picker.choice(ids)}" if ids else "/v1/jobs?limit=5"
                code = client.get(path).status_code
                with lock:
                    statuses.append(code)
                time.sleep(0.05)

    with ThreadPoolExecutor(UPLOADERS + POLLERS) as pool:
        pollers = [pool.submit(poller, n) for n in range(POLLERS)]
        try:
            uploads = [pool.submit(uploader, work[n::UPLOADERS]) for n in range(UPLOADERS)]
            for future in uploads:
                future.result()
            with FilejobClient(url, timeout=60) as client:

                def all_final() -> bool:
                    jobs = client.jobs(limit=500)  # a refusal raises ApiError
                    final = ("succeeded", "failed")
                    return all(j["status"] in final for j in jobs if j["id"] in accepted)

                wait_until(all_final, timeout=120, interval=0.1, message="jobs not final in time")
        finally:
            done.set()  # whatever went wrong above, the pollers stop and the pool can close
        for future in pollers:
            future.result()
    return accepted


@pytest.mark.timeout(300)  # two rounds of 300 uploads under 100 pollers: ~100 s on 2 cores
def test_soak_no_5xx_every_job_correct_and_resources_return(tmp_path: Path) -> None:
    process, url = start_server(
        tmp_path / "data", tmp_path / "server.log", {"FILEJOB_WORKERS": "2"}
    )
    server = psutil.Process(process.pid)
    try:
        statuses: list[int] = []
        # A warm-up round of the same size and concurrency: thread pools, malloc arenas,
        # SQLite's page caches and the largest listing reach their plateau here (measured:
        # +38 MiB in the first round, then +4-5 MiB per round), so what the measured round adds
        # beyond that is a leak.
        round_of_uploads(url, UPLOADS, seed=1, statuses=statuses)
        time.sleep(1)
        fds_before, rss_before = server.num_fds(), server.memory_info().rss

        accepted = round_of_uploads(url, UPLOADS, seed=2, statuses=statuses)

        assert len(accepted) == UPLOADS
        assert not [s for s in statuses if s >= 500], "server errors under load"
        with FilejobClient(url, timeout=60) as client:
            for job_id, (name, params, data) in accepted.items():
                job = client.job(job_id)
                assert job["status"] == "succeeded", job
                # The client checks the download against the job's sha256 (ApiError if not).
                result = client.download(job, tmp_path / "result").read_bytes()
                assert correct(name, params, data, result), (job_id, name)
        time.sleep(1)  # connections close
        assert server.num_fds() == fds_before
        rss_after = server.memory_info().rss
        assert rss_after <= rss_before + 48 * 1024 * 1024, (rss_before, rss_after)
    finally:
        stop_server(process)
