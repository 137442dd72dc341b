"""SIGKILL a real server at three moments; every accepted job still ends with the right result.

Round 1 kills it while upload bodies are arriving, round 2 while jobs are processing, round 3
while a large result is being written. Each round restarts the server on the same data dir,
which resumes what the dead one left. At the end every job that got a 202 must be `succeeded`,
with a result whose sha256 equals a reference run of the same processor in this process, and
after a sweep no file in storage is unreferenced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from filejob.processors.base import ProcessorContext
from filejob.processors.registry import ProcessorRegistry, builtin_processors
from tests.system.live.conftest import start_server, stop_server

MiB = 1024 * 1024
ENV = {"FILEJOB_WORKERS": "2", "FILEJOB_MAX_ATTEMPTS": "10"}


def make_inputs(
    rng: random.Random, count: int, big: int
) -> list[tuple[str, dict[str, Any], bytes]]:
    """Mixed processors and sizes, the first one `big` bytes (slow to upload or compress)."""
    image = io.BytesIO()
    Image.new("RGB", (640, 480), (rng.randrange(256), 80, 160)).save(image, "PNG")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["n", "name", "value"])
    writer.writerows([n, f"row{n}", n * 1.5] for n in range(5000))
    choices = [
        ("checksum", {}, lambda: rng.randbytes(rng.choice([10, 200_000, 3 * MiB]))),
        (
            "compress",
            {"format": "gzip", "level": 1},
            lambda: rng.randbytes(rng.choice([1000, 2 * MiB])),
        ),
        ("compress", {"format": "zstd"}, lambda: rng.randbytes(500_000)),
        ("thumbnail", {"width": 64, "height": 64}, image.getvalue),
        ("csv-to-parquet", {}, lambda: table.getvalue().encode()),
    ]
    items = [("compress", {"format": "gzip", "level": 9}, rng.randbytes(big))]
    for _ in range(count - 1):
        name, params, data = rng.choice(choices)
        items.append((name, params, data()))
    return items


def reference_sha256(
    registry: ProcessorRegistry, name: str, params: dict[str, Any], data: bytes
) -> str:
    processor = registry.get(name)
    assert processor is not None

    class Out(io.BytesIO):
        def close(self) -> None:  # like the runner's output: processors may close it
            pass

    out = Out()
    ctx = ProcessorContext(
        input=io.BytesIO(data),
        input_size=len(data),
        input_filename="input",
        input_content_type="application/octet-stream",
        output=out,  # type: ignore[arg-type]
    )
    processor.run(ctx, processor.Params.model_validate(params))
    return hashlib.sha256(out.getvalue()).hexdigest()


class SlowBody(io.BytesIO):
    """An upload body that trickles out (~50 MB/s) and says when `mark` bytes have gone."""

    def __init__(self, data: bytes, mark: int) -> None:
        super().__init__(data)
        self.mark = mark
        self.past_mark = threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(0.005)
        chunk = super().read(min(256 * 1024, size if size and size > 0 else 256 * 1024))
        if self.tell() >= self.mark:
            self.past_mark.set()
        return chunk


def post(url: str, name: str, params: dict[str, Any], data: bytes, body: Any = None) -> str | None:
    """The job id if the server accepted the upload (202), None if it died first."""
    try:
        response = httpx.post(
            f"{url}/v1/jobs",
            data={"processor": name, "params": json.dumps(params)},
            files={"file": ("input", body or data, "application/octet-stream")},
            timeout=60,
        )
    except httpx.TransportError:
        return None
    assert response.status_code == 202, response.text
    return response.json()["id"]


def statuses(url: str) -> dict[str, dict[str, Any]]:
    items = httpx.get(f"{url}/v1/jobs", params={"limit": 500}, timeout=30).json()["items"]
    return {job["id"]: job for job in items}


def wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def kill(process: Any) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_sigkill_at_three_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    data_dir = tmp_path / "data"
    accepted: dict[str, tuple[str, dict[str, Any], bytes]] = {}

    # Round 1: killed while upload bodies are arriving.
    process, url = start_server(data_dir, tmp_path / "round1.log", **ENV)
    inputs = make_inputs(rng, 20, big=96 * MiB)
    slow = SlowBody(inputs[0][2], mark=8 * MiB)
    cut_off: list[str | None] = []
    sender = threading.Thread(target=lambda: cut_off.append(post(url, *inputs[0], body=slow)))
    sender.start()
    for item in inputs[1:]:
        job_id = post(url, *item)
        assert job_id is not None
        accepted[job_id] = item
    assert slow.past_mark.wait(30)
    kill(process)  # mid-body: ~2 s of the big upload are still to come
    sender.join(timeout=60)
    assert cut_off == [None]  # not accepted, so nothing was promised for it

    # Round 2: killed while jobs are processing.
    process, url = start_server(data_dir, tmp_path / "round2.log", **ENV)
    for item in make_inputs(rng, 20, big=8 * MiB):
        job_id = post(url, *item)
        assert job_id is not None
        accepted[job_id] = item
    running: set[str] = set()

    def some_running() -> bool:
        running.update(i for i, j in statuses(url).items() if j["status"] == "running")
        return bool(running)

    wait_for(some_running)
    kill(process)

    # Round 3: killed while a large result is being written (gzip -9 of 64 MiB).
    process, url = start_server(data_dir, tmp_path / "round3.log", **ENV)
    items = make_inputs(rng, 20, big=64 * MiB)
    for item in items[1:]:
        job_id = post(url, *item)
        assert job_id is not None
        accepted[job_id] = item
    # The big one last, and watched from the moment it is accepted: posted first, it could
    # finish while the others were still being posted, and the kill would interrupt nothing.
    big_id = post(url, *items[0])
    assert big_id is not None
    accepted[big_id] = items[0]

    def big_one_under_way() -> bool:
        job = statuses(url)[big_id]
        assert job["status"] in ("queued", "running"), job  # else the round proves nothing
        return job["status"] == "running" and job["progress"] > 0.1

    wait_for(big_one_under_way)
    kill(process)
    assert len(accepted) >= 55

    # The last start resumes everything and sweeps at once.
    process, url = start_server(
        data_dir,
        tmp_path / "final.log",
        **ENV,
        FILEJOB_SWEEP_INTERVAL="0.2",
        FILEJOB_ORPHAN_GRACE="0",
    )
    try:
        final: dict[str, dict[str, Any]] = {}

        def all_final() -> bool:
            final.update(statuses(url))
            return all(final.get(j, {}).get("status") == "succeeded" for j in accepted)

        wait_for(all_final, timeout=240)
        registry = ProcessorRegistry(builtin_processors())
        for job_id, (name, params, data) in accepted.items():
            job = final[job_id]
            assert job["input"]["sha256"] == hashlib.sha256(data).hexdigest()
            assert job["result"]["sha256"] == reference_sha256(registry, name, params, data), job
            downloaded = httpx.get(f"{url}{job['result']['url']}", timeout=60)
            assert downloaded.status_code == 200, downloaded.text
            assert hashlib.sha256(downloaded.content).hexdigest() == job["result"]["sha256"]
        assert all(j["status"] == "succeeded" for j in final.values())  # nothing stuck
        # The kills really interrupted work: such jobs ran again after the restart. (A small
        # job seen running in round 2 may have finished just before the kill, hence `any`.)
        assert final[big_id]["attempts"] >= 2
        assert any(final[j]["attempts"] >= 2 for j in running)

        def no_unreferenced_files() -> bool:
            with sqlite3.connect(data_dir / "filejob.db") as db:
                keys = {
                    k for row in db.execute("select input_key, result_key from jobs") for k in row
                }
            blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file()]
            temps = [p for p in (data_dir / "tmp").iterdir() if not p.name.startswith(".")]
            stored = {f"{p.parent.parent.name}/{p.name}" for p in blobs}
            return not temps and stored <= keys

        wait_for(no_unreferenced_files, timeout=30)
    finally:
        stop_server(process)
