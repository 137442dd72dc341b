"""How `filejob submit` sends one input (client/sending.py): the request each way makes, the
Idempotency-Key it carries on every try, and which files go by tus."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from filejob.client.api import FilejobClient
from filejob.client.errors import ApiError
from filejob.client.retry import Backoff
from filejob.client.sending import Item, Sender
from filejob.client.url_storage import UploadUrls
from tests.unit.client.fake_tus import FakeTus, problem

JOB = {"id": "j1", "status": "queued", "input": {"size": 5}}

Handler = Callable[[httpx.Request], httpx.Response]


def sender(handler: Handler, tmp_path: Path, resumable_above: int = 1 << 30) -> Sender:
    client = FilejobClient("http://filejob.test")
    client.http = httpx.Client(
        base_url="http://filejob.test", transport=httpx.MockTransport(handler)
    )
    return Sender(
        client,
        "checksum",
        {"level": 3},
        urls=UploadUrls(tmp_path / "cache"),
        resumable_above=resumable_above,
        retry=Backoff(retries=5, first=0),
    )


def form_parts(request: httpx.Request) -> list[tuple[str, str | None, bytes]]:
    """A multipart/form-data body's parts: (name, filename, content)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.read())
    parts = []
    for part in message.iter_parts():
        disposition: Any = part.get("content-disposition")
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes)
        parts.append((disposition.params["name"], disposition.params.get("filename"), content))
    return parts


def test_a_submit_tried_again_sends_the_same_idempotency_key(tmp_path: Path) -> None:
    """The first try reaches the server (it made the job) but its answer is lost; the second
    is answered 409 while the first is in flight; the third gets the job: one key for all."""
    (tmp_path / "in.bin").write_bytes(b"hello")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        request.read()
        if len(seen) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if len(seen) == 2:
            return problem(409, "idempotency_key_in_flight", **{"Retry-After": "0"})
        return httpx.Response(202, json=JOB, headers={"Idempotent-Replayed": "true"})

    item = Item(file=tmp_path / "in.bin")
    positions: list[int] = []
    job = sender(handler, tmp_path).send(item, positions.append, threading.Event())
    assert job == JOB
    assert [r.headers["idempotency-key"] for r in seen] == [item.idempotency_key] * 3
    assert [r.url.path for r in seen] == ["/v1/jobs"] * 3
    assert positions.count(0) == 3 and positions[-1] == 5  # each try starts the bar over
    [(name, filename, content)] = [p for p in form_parts(seen[-1]) if p[1]]
    assert (name, filename, content) == ("file", "in.bin", b"hello")


def test_each_input_has_its_own_key() -> None:
    assert Item(url="https://a").idempotency_key != Item(url="https://a").idempotency_key


def test_a_refused_submit_is_not_tried_again(tmp_path: Path) -> None:
    (tmp_path / "in.bin").write_bytes(b"hello")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        request.read()
        return problem(422, "invalid_params")

    with pytest.raises(ApiError):
        sender(handler, tmp_path).send(
            Item(file=tmp_path / "in.bin"), lambda n: None, threading.Event()
        )
    assert len(seen) == 1


def test_a_url_is_a_form_with_source_url_and_no_file_part(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        request.read()
        if len(seen) == 1:
            raise httpx.ReadTimeout("no answer")
        return httpx.Response(202, json=JOB)

    item = Item(url="https://example.org/data.csv")
    assert sender(handler, tmp_path).send(item, lambda n: None, threading.Event()) == JOB
    assert [r.headers["idempotency-key"] for r in seen] == [item.idempotency_key] * 2
    request = seen[-1]
    assert (request.method, request.url.path) == ("POST", "/v1/jobs")
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = form_parts(request)
    assert all(filename is None for _, filename, _ in parts)  # no file part
    fields = {name: content.decode() for name, _, content in parts}
    assert fields == {
        "processor": "checksum",
        "params": '{"level": 3}',
        "source_url": "https://example.org/data.csv",
    }


@pytest.mark.parametrize(("size", "resumable"), [(1000, False), (1001, True)])
def test_files_above_the_threshold_go_by_tus(tmp_path: Path, size: int, resumable: bool) -> None:
    (tmp_path / "in.bin").write_bytes(b"x" * size)
    tus = FakeTus()
    jobs: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v1/uploads"):
            return tus.handle(request)
        jobs.append(request)
        request.read()
        job_id = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(202 if request.method == "POST" else 200, json={**JOB, "id": job_id})

    item = Item(file=tmp_path / "in.bin")
    job = sender(handler, tmp_path, resumable_above=1000).send(
        item, lambda n: None, threading.Event()
    )
    assert item.resumable is resumable
    if resumable:
        [upload] = tus.uploads.values()
        assert bytes(upload.data) == b"x" * size
        assert upload.metadata["filename"] == "in.bin"
        assert json.loads(upload.metadata["params"]) == {"level": 3}
        assert tus.of("POST")[0].headers["idempotency-key"] == item.idempotency_key
        assert [(r.method, r.url.path) for r in jobs] == [("GET", f"/v1/jobs/{upload.job_id}")]
        assert job["id"] == upload.job_id
    else:
        assert tus.requests == [] and [r.method for r in jobs] == ["POST"]
