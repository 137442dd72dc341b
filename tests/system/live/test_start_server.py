"""The test servers' start-up: a port chosen free that another server took first is noticed
(that server answers /healthz too), and the server starts on another port."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import servers
from tests.support.ports import listens_on
from tests.support.servers import start_server, stop_server


def test_a_port_taken_by_another_server_is_not_mistaken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, first_url = start_server(tmp_path / "first", tmp_path / "first.log")
    try:
        taken = int(first_url.rsplit(":", 1)[1])
        chosen = iter([taken])
        real = servers.free_port
        monkeypatch.setattr(servers, "free_port", lambda: next(chosen, None) or real())
        second, second_url = start_server(tmp_path / "second", tmp_path / "second.log")
        try:
            assert second_url != first_url
            assert listens_on(second.pid, int(second_url.rsplit(":", 1)[1]))
            assert "address already in use" in (tmp_path / "second.log").read_text()
        finally:
            stop_server(second)
    finally:
        stop_server(first)
