"""Live events from a real server: the stream is sent as things happen, not when they end."""

from __future__ import annotations

import json
import random

from tests.support.jobs import submit_bytes
from tests.support.servers import LiveServer


def test_events_stream_as_they_happen(live: LiveServer) -> None:
    # Level-19 zstd of 24 MiB of text: far longer than this test waits for it.
    rng = random.Random(7)
    words = [rng.randbytes(4).hex() for _ in range(4000)]
    text = " ".join(rng.choice(words) for _ in range(2_800_000)).encode()
    with live.api() as api, live.client() as client:
        params = {"format": "zstd", "level": 19}
        job_id = submit_bytes(api, text, "compress", params, filename="big.txt")["id"]
        seen: list[str] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                status = json.loads(line.removeprefix("data: "))["status"]
                seen.append(status)
                if len(seen) == 1:
                    # The first event arrived while the job runs: cancel it from here.
                    assert status in ("queued", "running")
                    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert seen[-1] == "cancelled"  # and the stream ended after the final state
