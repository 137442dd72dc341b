"""A real `filejob serve` in a subprocess on 127.0.0.1, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import LiveServer, start_server, stop_server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live")
    data_dir = root / "data"
    process, url = start_server(data_dir, root / "server.log")
    try:
        yield LiveServer(url, process.pid, data_dir)
    finally:
        stop_server(process)
