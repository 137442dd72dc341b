from __future__ import annotations

import hashlib
import json
import os

import pytest
from pydantic import ValidationError

from filejob.processors.base import Cancelled
from filejob.processors.checksum import Checksum
from tests.support.harness import MakeJob

MiB = 1024 * 1024


def expected_for(data: bytes) -> dict[str, object]:
    return {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "blake2b": hashlib.blake2b(data).hexdigest(),
    }


def test_digests_match_hashlib(make_job: MakeJob) -> None:
    data = os.urandom(5 * MiB + 123)
    job = make_job(data, filename="backup.tar")
    out = job.run(Checksum())
    assert out.filename == "backup.tar.checksum.json"
    assert out.content_type == "application/json"
    assert json.loads(job.result()) == expected_for(data)


def test_empty_file(make_job: MakeJob) -> None:
    job = make_job(b"", filename="empty")
    job.run(Checksum())
    assert json.loads(job.result()) == expected_for(b"")
    assert job.progress[-1] == 1.0


def test_progress_per_chunk_reaches_one(make_job: MakeJob) -> None:
    job = make_job(os.urandom(3 * MiB + 1))
    job.run(Checksum())
    assert job.progress == sorted(job.progress)
    assert len(job.progress) >= 4  # one per 1 MiB chunk, plus the end
    assert job.progress[0] == pytest.approx(MiB / (3 * MiB + 1))
    assert job.progress[-1] == 1.0


def test_cancelled_before_start(make_job: MakeJob) -> None:
    job = make_job(os.urandom(MiB))
    job.cancel.set()
    with pytest.raises(Cancelled):
        job.run(Checksum())
    assert job.progress == []


def test_cancelled_while_running(make_job: MakeJob) -> None:
    job = make_job(os.urandom(4 * MiB), cancel_after_reports=2)
    with pytest.raises(Cancelled):
        job.run(Checksum())
    assert len(job.progress) == 2
    assert job.result() == b""


def test_takes_no_params(make_job: MakeJob) -> None:
    assert Checksum.content_types == ("*/*",)
    assert Checksum().accepts("application/x-executable")
    with pytest.raises(ValidationError):
        make_job(b"x").run(Checksum(), algorithm="crc32")
