"""A real `filejob serve` for the fuzz run (tests/support/fuzz.py says what it holds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fuzz import FuzzServer, seed_jobs, server_environment, unlimited_key
from tests.support.servers import start_server, stop_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    root = tmp_path_factory.mktemp("fuzz")
    data_dir, log = root / "data", root / "server.log"
    env = server_environment()
    process, url = start_server(data_dir, log, env)  # `filejob db upgrade`, then serve
    try:
        server = FuzzServer(url, process.pid, unlimited_key(data_dir, env), log)
        seed_jobs(server)
        yield server
    finally:
        stop_server(process)
