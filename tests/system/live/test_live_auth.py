"""Auth on a real server: keys from the real `filejob keys` command, refusals at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from filejob.client.api import FilejobClient
from tests.support.jobs import submit_bytes, wait_final
from tests.support.servers import LIVE_SECRET, run_cli, start_server, stop_server


def test_keys_from_the_cli_on_a_server_that_requires_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": LIVE_SECRET}
    process, url = start_server(data_dir, tmp_path / "server.log", env)
    try:
        created = run_cli(data_dir, "keys", "create", "--name", "ci", "--max-active-jobs", "5")
        assert created.returncode == 0, created.stderr
        token = re.search(r"api key:\s+(\S+)", created.stdout)
        key_id = re.search(r"id:\s+(\S+)", created.stdout)
        assert token and key_id and token.group(1).startswith("fj_")
        assert "shown only now" in created.stderr
        listed = run_cli(data_dir, "keys", "list")
        assert key_id.group(1) in listed.stdout and "ci" in listed.stdout
        assert token.group(1) not in listed.stdout

        with httpx.Client(base_url=url, timeout=30) as anonymous:
            assert anonymous.get("/v1/jobs").status_code == 401
        with FilejobClient(url, token.group(1), timeout=30) as api:
            job = submit_bytes(api, b"abc", "checksum", filename="a.txt")
            done = wait_final(api, job["id"])
            assert done["status"] == "succeeded"
            link = done["result"]["url"]
        with httpx.Client(base_url=url, timeout=30) as third_party:
            assert third_party.get(link).status_code == 200

        revoked = run_cli(data_dir, "keys", "revoke", key_id.group(1))
        assert revoked.returncode == 0
        auth = {"Authorization": f"Bearer {token.group(1)}"}
        with httpx.Client(base_url=url, timeout=30, headers=auth) as client:
            assert client.get("/v1/jobs").status_code == 401
        assert run_cli(data_dir, "keys", "revoke", key_id.group(1)).returncode == 1
    finally:
        stop_server(process)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "0.0.0.0"], {"FILEJOB_AUTH": "off"}, "without authentication"),
        ([], {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": "changeme"}, "placeholder"),
        ([], {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": "short"}, "placeholder"),
        ([], {"FILEJOB_RATE_LIMIT_STORAGE": "nosuch://x"}, "FILEJOB_RATE_LIMIT_STORAGE"),
        ([], {}, "cannot use the database"),  # no data dir, no `db upgrade`
    ],
    ids=["public-auth-off", "placeholder", "short", "rate-limit-storage", "no-database"],
)
def test_unsafe_configurations_refuse_to_start(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(tmp_path / "data", "serve", "--port", "1", *args, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
