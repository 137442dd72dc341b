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
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from filejob.client.api import FilejobClient
from filejob.processors.registry import ProcessorRegistry, builtin_processors
from tests.support.harness import reference_sha256
from tests.support.jobs import jobs_by_id, submit_bytes
from tests.support.servers import kill, start_server, stop_server
from tests.support.wait import wait_until

MiB = 1024 * 1024
ENV = {"FILEJOB_WORKERS": "2", "FILEJOB_MAX_ATTEMPTS": "10"}
Item = tuple[str, dict[str, Any], bytes]  # processor, params, input


def make_inputs(rng: random.Random, count: int, big: int) -> list[Item]:
    """Mixed processors and sizes, the first one `big` bytes (slow to upload or compress)."""
    image = io.BytesIO()
    Image.new("RGB", (640, 480), (rng.randrange(256), 80, 160)).save(image, "PNG")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["n", "name", "value"])
    writer.writerows([n, f"row{n}", n * 1.5] for n in range(5000))
    choices: list[tuple[str, dict[str, Any], Callable[[], bytes]]] = [
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


def post_trickling(url: str, item: Item, body: SlowBody) -> str | None:
    """The job id if the server accepted the trickled upload (202), None if it died first
    (raw HTTP: the project's client uploads from a file, at full speed)."""
    name, params, _ = item
    try:
        response = httpx.post(
            f"{url}/v1/jobs",
            data={"processor": name, "params": json.dumps(params)},
            files={"file": ("input", body, "application/octet-stream")},
            timeout=60,
        )
    except httpx.TransportError:
        return None
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def submit_all(url: str, items: list[Item], accepted: dict[str, Item]) -> list[str]:
    """Submit each item (each must be accepted); their job ids, in order."""
    with FilejobClient(url) as client:
        ids = [
            str(submit_bytes(client, data, name, params, filename="input")["id"])
            for name, params, data in items
        ]
    accepted.update(zip(ids, items, strict=True))
    return ids


def test_sigkill_at_three_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    data_dir = tmp_path / "data"
    accepted: dict[str, Item] = {}

    # Round 1: killed while upload bodies are arriving.
    process, url = start_server(data_dir, tmp_path / "round1.log", ENV)
    inputs = make_inputs(rng, 20, big=96 * MiB)
    slow = SlowBody(inputs[0][2], mark=8 * MiB)
    cut_off: list[str | None] = []
    sender = threading.Thread(target=lambda: cut_off.append(post_trickling(url, inputs[0], slow)))
    sender.start()
    submit_all(url, inputs[1:], accepted)
    assert slow.past_mark.wait(30)
    kill(process)  # mid-body: ~2 s of the big upload are still to come
    sender.join(timeout=60)
    assert cut_off == [None]  # not accepted, so nothing was promised for it

    # Round 2: killed while jobs are processing.
    process, url = start_server(data_dir, tmp_path / "round2.log", ENV)
    submit_all(url, make_inputs(rng, 20, big=8 * MiB), accepted)
    running: set[str] = set()

    with FilejobClient(url) as client:

        def some_running() -> bool:
            jobs = jobs_by_id(client)
            running.update(i for i, j in jobs.items() if j["status"] == "running")
            return bool(running)

        wait_until(some_running, timeout=60)
    kill(process)

    # Round 3: killed while a large result is being written (gzip -9 of 64 MiB).
    process, url = start_server(data_dir, tmp_path / "round3.log", ENV)
    items = make_inputs(rng, 20, big=64 * MiB)
    submit_all(url, items[1:], accepted)
    # The big one last, and watched from the moment it is accepted: posted first, it could
    # finish while the others were still being posted, and the kill would interrupt nothing.
    [big_id] = submit_all(url, items[:1], accepted)

    with FilejobClient(url) as client:

        def big_one_under_way() -> bool:
            job = jobs_by_id(client)[big_id]
            assert job["status"] in ("queued", "running"), job  # else the round proves nothing
            return bool(job["status"] == "running" and job["progress"] > 0.1)

        wait_until(big_one_under_way, timeout=60)
    kill(process)
    assert len(accepted) >= 55

    # The last start resumes everything and sweeps at once.
    final_env = {**ENV, "FILEJOB_SWEEP_INTERVAL": "0.2", "FILEJOB_ORPHAN_GRACE": "0"}
    process, url = start_server(data_dir, tmp_path / "final.log", final_env)
    try:
        with FilejobClient(url) as client:
            final: dict[str, dict[str, Any]] = {}

            def all_final() -> bool:
                final.update(jobs_by_id(client))
                return all(final.get(j, {}).get("status") == "succeeded" for j in accepted)

            wait_until(all_final, timeout=240)
            registry = ProcessorRegistry(builtin_processors())
            for job_id, (name, params, data) in accepted.items():
                job = final[job_id]
                assert job["input"]["sha256"] == hashlib.sha256(data).hexdigest()
                expected = reference_sha256(registry, name, params, data)
                assert job["result"]["sha256"] == expected, job
                # The client checks the download against the job's sha256 (ApiError if not).
                downloaded = client.download(job, tmp_path / "result").read_bytes()
                assert hashlib.sha256(downloaded).hexdigest() == job["result"]["sha256"]
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

        wait_until(no_unreferenced_files, timeout=30)
    finally:
        stop_server(process)
