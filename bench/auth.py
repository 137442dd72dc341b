"""What authentication costs, and whether a foreign job id can be told from a missing one.

Run: `.venv/bin/python bench/auth.py` (about 20 s). Starts `filejob serve` on 127.0.0.1 with
auth off, where a presented key is still checked: so anonymous polls (no key lookup, no rate
limit) are the baseline for keyed polls (sha256, one indexed read, a rate-limit hit) in the
same server and run, interleaved. Then a second key polls the first key's job (a foreign id)
and an id no job has (a missing one), interleaved; both must cost the same.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from run import filejob_command, free_port, start_server, stop_server

ROUNDS = 2000


def new_key(env: dict[str, str], name: str) -> str:
    out = subprocess.run(
        [*filejob_command(), "keys", "create", "--name", name, "--rate-limit", "0"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"api key:\s+(\S+)", out)
    assert match
    return match.group(1)


def interleaved(*calls: Callable[[], object]) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(ROUNDS):
        for n, call in enumerate(calls):
            start = time.perf_counter()
            call()
            samples[n].append((time.perf_counter() - start) * 1e6)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="filejob-auth-") as tmp:
        env = {
            **os.environ,
            "FILEJOB_DATA_DIR": f"{tmp}/data",
            "FILEJOB_LOG_LEVEL": "warning",
            "FILEJOB_MIN_FREE_BYTES": "0",
            "FILEJOB_AUTH": "off",
        }
        subprocess.run(
            [*filejob_command(), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        alice, bob = new_key(env, "alice"), new_key(env, "bob")
        port = free_port()
        argv = [*filejob_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        server = start_server("filejob", argv, env, port, Path(tmp), "/healthz")
        url = server.url("")
        try:
            as_alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {alice}"})
            as_bob = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bob}"})
            anonymous = httpx.Client(base_url=url)
            file = {"file": ("a", b"abc")}
            theirs = anonymous.post("/v1/jobs", data={"processor": "checksum"}, files=file)
            own = as_alice.post("/v1/jobs", data={"processor": "checksum"}, files=file)
            time.sleep(0.5)
            anon_path, alice_path = (f"/v1/jobs/{r.json()['id']}" for r in (theirs, own))
            missing_path = "/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA"
            assert as_alice.get(alice_path).status_code == 200
            assert as_bob.get(alice_path).status_code == 404
            interleaved(lambda: anonymous.get(anon_path), lambda: as_alice.get(alice_path))
            base, keyed = interleaved(
                lambda: anonymous.get(anon_path), lambda: as_alice.get(alice_path)
            )
            foreign, missing = interleaved(
                lambda: as_bob.get(alice_path), lambda: as_bob.get(missing_path)
            )
            for client in (as_alice, as_bob, anonymous):
                client.close()
        finally:
            stop_server(server)

    def row(label: str, samples: list[float], baseline: list[float]) -> str:
        ratio = statistics.median(samples) / statistics.median(baseline)
        p90 = statistics.quantiles(samples, n=10)[-1]
        return f"{label:34}{statistics.median(samples):10.0f}{p90:10.0f}{ratio:9.2f}"

    print(f"GET /v1/jobs/{{id}}, {ROUNDS} interleaved rounds, one keep-alive client each")
    print(f"{'':34}{'p50 µs':>10}{'p90 µs':>10}{'ratio':>9}")
    print(row("anonymous (baseline)", base, base))
    print(row("with an API key", keyed, base))
    print(row("another key's job: 404", foreign, missing))
    print(row("a missing job: 404 (its baseline)", missing, missing))


if __name__ == "__main__":
    main()
