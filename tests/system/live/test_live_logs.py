"""Logs of a real server: JSON lines (stderr is not a terminal), a request id on request
lines, the job id on job lines, and no key or link signature anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from filejob.client.api import FilejobClient
from tests.support.jobs import wait_final
from tests.support.servers import LIVE_SECRET, create_key, start_server, stop_server


def test_logs_are_json_with_ids_and_without_secrets(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    env = {
        "FILEJOB_AUTH": "required",
        "FILEJOB_SECRET_KEY": LIVE_SECRET,
        "FILEJOB_LOG_LEVEL": "info",
    }
    process, url = start_server(data_dir, log, env)
    try:
        token = create_key(data_dir, name="logs", **env)
        with FilejobClient(url, token, timeout=30) as client:
            response = client.http.post(
                "/v1/jobs",
                data={"processor": "checksum"},
                files={"file": ("a.bin", b"logged")},
                headers={"X-Request-ID": "given-id-42"},
            )
            assert response.headers["x-request-id"] == "given-id-42"
            job_id = response.json()["id"]
            job = wait_final(client, job_id)
            link = str(job["result"]["url"])
            assert len(client.http.get(f"/v1/jobs/{job_id}").headers["x-request-id"]) == 16
        signature = parse_qs(urlsplit(link).query)["sig"][0]
        assert httpx.get(url + link, timeout=30).status_code == 200  # with the sig in the URL
    finally:
        stop_server(process)

    text = log.read_text()
    assert token not in text and token[:12] not in text
    assert signature not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access and all(len(line.get("request_id", "")) > 0 for line in access)
    assert any(
        line["request_id"] == "given-id-42" and "POST /v1/jobs" in line["msg"] for line in access
    )
    assert any("sig=[redacted]" in line["msg"] for line in access)
    finished = [
        line for line in lines if line.get("job_id") == job_id and "succeeded" in line["msg"]
    ]
    assert finished, "the job's end is logged with its id"


def test_access_lines_can_be_turned_off(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    env = {"FILEJOB_ACCESS_LOG": "false", "FILEJOB_LOG_LEVEL": "info"}
    process, url = start_server(data_dir, log, env)
    try:
        with FilejobClient(url, None, timeout=30) as client:
            job_id = client.http.post(
                "/v1/jobs", data={"processor": "checksum"}, files={"file": ("a.bin", b"x")}
            ).json()["id"]
            wait_final(client, job_id)
            metrics = client.http.get("/metrics").text
    finally:
        stop_server(process)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line.get("job_id") == job_id for line in lines), "other lines are still logged"
    assert 'route="/v1/jobs/{job_id}",status="200"' in metrics, "and requests still counted"
