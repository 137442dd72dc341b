from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard
from pydantic import ValidationError

from filejob.processors.base import Cancelled
from filejob.processors.compress import Compress, CompressParams
from tests.support.harness import MakeJob

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sample() -> bytes:
    # Half random, half repetitive text: exercises both incompressible and compressible data.
    text = b"".join(b"line %d: the quick brown fox\n" % i for i in range(100_000))
    return os.urandom(3 * MiB) + text


def zstd_decompress(data: bytes) -> bytes:
    # The frame does not record the content size, so decompress as a stream.
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def test_zstd_default_round_trips(make_job: MakeJob, sample: bytes) -> None:
    job = make_job(sample, filename="dump.sql")
    out = job.run(Compress())
    assert out.filename == "dump.sql.zst"
    assert out.content_type == "application/zstd"
    result = job.result()
    assert result[:4] == b"\x28\xb5\x2f\xfd"
    assert len(result) < len(sample)
    assert zstd_decompress(result) == sample


def test_gzip_round_trips_and_is_reproducible(make_job: MakeJob, sample: bytes) -> None:
    outputs = []
    for _ in range(2):
        job = make_job(sample, filename="dump.sql")
        out = job.run(Compress(), format="gzip")
        assert out.filename == "dump.sql.gz"
        assert out.content_type == "application/gzip"
        outputs.append(job.result())
    assert outputs[0] == outputs[1]
    header = outputs[0][:10]
    assert header[3] & 0x08 == 0  # no FNAME: the runner's temp-file name is not leaked
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime=0
    assert gzip.decompress(outputs[0]) == sample


@pytest.mark.parametrize(("fmt", "level"), [("gzip", 1), ("gzip", 9), ("zstd", 1), ("zstd", 19)])
def test_levels_round_trip(make_job: MakeJob, fmt: str, level: int) -> None:
    data = b"abcdefgh" * 20_000 + os.urandom(1000)
    job = make_job(data)
    job.run(Compress(), format=fmt, level=level)
    result = job.result()
    assert (gzip.decompress(result) if fmt == "gzip" else zstd_decompress(result)) == data


def test_higher_level_is_smaller(make_job: MakeJob, sample: bytes) -> None:
    sizes = []
    for level in (1, 9):
        job = make_job(sample)
        job.run(Compress(), format="gzip", level=level)
        sizes.append(len(job.result()))
    assert sizes[1] < sizes[0]


def test_empty_input(make_job: MakeJob) -> None:
    for fmt in ("gzip", "zstd"):
        job = make_job(b"")
        job.run(Compress(), format=fmt)
        result = job.result()
        assert (gzip.decompress(result) if fmt == "gzip" else zstd_decompress(result)) == b""


def test_default_levels() -> None:
    assert CompressParams().model_dump() == {"format": "zstd", "level": 3}
    assert CompressParams(format="gzip").level == 6


@pytest.mark.parametrize(
    "params",
    [
        {"format": "gzip", "level": 0},
        {"format": "gzip", "level": 10},
        {"format": "gzip", "level": 19},  # fine for zstd, not for gzip
        {"format": "zstd", "level": 0},
        {"format": "zstd", "level": 20},
        {"format": "zstd", "level": -1},
        {"format": "bz2"},
        {"level": "fast"},
        {"format": "zstd", "threads": 4},
    ],
)
def test_invalid_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CompressParams.model_validate(params)


def test_schema_documents_params() -> None:
    schema = CompressParams.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["format"]["enum"] == ["gzip", "zstd"]
    assert "description" in schema["properties"]["level"]


def test_progress_reaches_one(make_job: MakeJob, sample: bytes) -> None:
    job = make_job(sample)
    job.run(Compress())
    assert len(job.progress) >= 4
    assert job.progress == sorted(job.progress)
    assert job.progress[-1] == 1.0


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_cancelled_before_start(make_job: MakeJob, fmt: str) -> None:
    job = make_job(os.urandom(MiB))
    job.cancel.set()
    with pytest.raises(Cancelled):
        job.run(Compress(), format=fmt)


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_cancelled_while_running(make_job: MakeJob, sample: bytes, fmt: str) -> None:
    job = make_job(sample, cancel_after_reports=1)
    with pytest.raises(Cancelled):
        job.run(Compress(), format=fmt)
    assert len(job.progress) == 1
