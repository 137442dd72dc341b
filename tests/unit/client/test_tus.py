"""The CLI's tus upload (client/tus.py) against a fake tus server: where it resumes from after
a cut, a lost answer, a re-run or a gone upload, what it sends, and what it gives up on."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx
import pytest

from filejob.client import tus
from filejob.client.errors import Aborted, ApiError
from filejob.client.retry import Backoff
from filejob.client.tus import TusUpload, encode_metadata, monitored_job
from filejob.client.url_storage import UploadUrls
from tests.unit.client.fake_tus import FakeTus, problem

KEY = "fingerprint"


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tus, "BLOCK", 1000)
    monkeypatch.setattr(tus, "CHUNK", 4000)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(10_500))
    return path


@pytest.fixture
def urls(tmp_path: Path) -> UploadUrls:
    return UploadUrls(tmp_path / "cache")


def upload(
    server: FakeTus,
    file: Path,
    urls: UploadUrls,
    *,
    abort: threading.Event | None = None,
    positions: list[int] | None = None,
    retries: int = 8,
) -> TusUpload:
    metadata = {"processor": "checksum", "params": json.dumps({"a": 1}), "filename": file.name}
    return TusUpload(
        server.client(),
        file,
        metadata,
        KEY,
        urls,
        "idem-1",
        position=positions.append if positions is not None else None,
        abort=abort,
        backoff=Backoff(retries=retries, first=0),
    )


def test_an_upload_is_created_sent_in_chunks_and_gives_its_job(
    file: Path, urls: UploadUrls
) -> None:
    server = FakeTus()
    positions: list[int] = []
    job = upload(server, file, urls, positions=positions).run()
    [made] = server.uploads.values()
    assert bytes(made.data) == file.read_bytes()
    assert job == made.job_id
    assert made.metadata == {"processor": "checksum", "params": '{"a": 1}', "filename": "big.bin"}
    [create] = server.of("POST")
    assert create.headers["idempotency-key"] == "idem-1"
    assert create.headers["tus-resumable"] == "1.0.0"
    assert create.headers["upload-length"] == "10500"
    assert [r.headers["upload-offset"] for r in server.of("PATCH")] == ["0", "4000", "8000"]
    assert positions[-1] == 10_500 and positions == sorted(positions)
    assert urls.get(KEY) is None  # forgotten once the job is known


def test_a_cut_patch_resumes_from_the_servers_offset(file: Path, urls: UploadUrls) -> None:
    server = FakeTus(cut_patch_after=2500)
    job = upload(server, file, urls).run()
    [made] = server.uploads.values()
    assert bytes(made.data) == file.read_bytes() and job == made.job_id
    offsets = [int(r.headers["upload-offset"]) for r in server.of("PATCH")]
    assert offsets[:2] == [0, 2500]  # after HEAD, from what the server kept
    assert len(server.of("HEAD")) == 1
    assert server.received == file.stat().st_size  # no byte sent twice


def test_the_creation_is_tried_again_with_the_same_idempotency_key(
    file: Path, urls: UploadUrls
) -> None:
    server = FakeTus(lose_creation_answer=1, refuse={"POST": problem(503, "unavailable")})
    upload(server, file, urls).run()
    keys = [r.headers["idempotency-key"] for r in server.of("POST")]
    assert keys == ["idem-1"] * 3  # refused, answer lost, made


def test_ctrl_c_keeps_the_url_and_a_rerun_sends_only_the_rest(file: Path, urls: UploadUrls) -> None:
    server = FakeTus()
    abort = threading.Event()

    def position(n: int) -> None:
        if n >= 5000:
            abort.set()

    first = upload(server, file, urls, abort=abort)
    first.position = position
    with pytest.raises(Aborted):
        first.run()
    [made] = server.uploads.values()
    kept = len(made.data)
    assert 0 < kept < file.stat().st_size
    assert urls.get(KEY) == "http://tus.test/v1/uploads/u1"
    before, patches = server.received, len(server.of("PATCH"))
    job = upload(server, file, urls).run()  # the same command, run again
    assert job == made.job_id and bytes(made.data) == file.read_bytes()
    assert len(server.of("POST")) == 1  # no second upload
    assert server.received - before == file.stat().st_size - kept
    assert int(server.of("PATCH")[patches].headers["upload-offset"]) == kept


def test_a_kept_url_the_server_forgot_starts_over(file: Path, urls: UploadUrls) -> None:
    urls.put(KEY, "http://tus.test/v1/uploads/gone")
    server = FakeTus()
    upload(server, file, urls).run()
    assert [r.url.path for r in server.of("HEAD")] == ["/v1/uploads/gone"]
    assert len(server.of("POST")) == 1
    assert urls.get(KEY) is None


def test_an_upload_finished_by_an_earlier_run_gives_its_job_without_a_patch(
    file: Path, urls: UploadUrls
) -> None:
    server = FakeTus(link_on_finish=False)
    first = upload(server, file, urls)
    first.urls = UploadUrls(urls.root / "elsewhere")  # that run died before forgetting
    first.run()
    urls.put(KEY, "http://tus.test/v1/uploads/u1")
    patches = len(server.of("PATCH"))
    job = upload(server, file, urls).run()
    assert job == server.uploads["u1"].job_id
    assert len(server.of("PATCH")) == patches
    assert server.requests[-1].method == "GET"  # no Link: the upload's state says


def test_a_moved_offset_is_asked_for_and_followed(file: Path, urls: UploadUrls) -> None:
    server = FakeTus(refuse={"PATCH": problem(409, "upload_offset_mismatch")})
    upload(server, file, urls).run()
    assert bytes(server.uploads["u1"].data) == file.read_bytes()


def test_a_refusal_is_not_tried_again(file: Path, urls: UploadUrls) -> None:
    server = FakeTus(refuse={"POST": problem(422, "unknown_processor")})
    with pytest.raises(ApiError) as refused:
        upload(server, file, urls).run()
    assert refused.value.code == "unknown_processor"
    assert len(server.requests) == 1


def test_failures_in_a_row_are_given_up_after_the_retries(file: Path, urls: UploadUrls) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    failing = upload(FakeTus(), file, urls, retries=3)
    failing.http = httpx.Client(base_url="http://tus.test", transport=httpx.MockTransport(down))
    with pytest.raises(httpx.ConnectError):
        failing.run()
    assert failing.backoff.failures == 4


def test_metadata_and_link_forms() -> None:
    assert encode_metadata({"filename": "é.bin", "processor": "x"}) == (
        "filename w6kuYmlu,processor eA=="
    )
    assert monitored_job('</v1/jobs/abc>; rel="monitor"') == "abc"
    assert monitored_job("</v1/jobs/abc>; rel=monitor, <x>; rel=next") == "abc"
    assert monitored_job('</v1/jobs/abc>; rel="next"') is None
    assert monitored_job(None) is None
