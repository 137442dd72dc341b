from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from filejob.processors.base import Cancelled, ProcessingError
from filejob.processors.csv_to_parquet import CsvToParquet, CsvToParquetParams
from tests.support.harness import MakeJob

MiB = 1024 * 1024
ROWS = 60_000  # about 3.5 MiB: several 1 MiB blocks, so several batches and a real stream


def make_rows(n: int) -> list[dict[str, object]]:
    base = dt.datetime(2024, 1, 1)
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": i,
                "price": i * 0.25 - 1000.5,
                # Delimiters, quotes and non-ASCII inside values exercise the quoting.
                "name": f'item {i}, "size" {i % 7}' if i % 5 == 0 else f"ítem-{i}",
                "active": i % 3 == 0,
                "created": base + dt.timedelta(seconds=i * 37),
                "score": None if i % 4 == 0 else i % 1000,
            }
        )
    return rows


def csv_field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def to_csv(rows: list[dict[str, object]], delimiter: str = ",") -> bytes:
    lines = [delimiter.join(rows[0])]
    lines += [delimiter.join(csv_field(v) for v in row.values()) for row in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    return make_rows(ROWS)


@pytest.fixture(scope="module")
def csv_bytes(rows: list[dict[str, object]]) -> bytes:
    data = to_csv(rows)
    assert len(data) > 3 * MiB
    return data


def read_parquet(job) -> pa.Table:
    job.result()
    return pq.read_table(job.output_path)


def malformed(job, **params: object) -> str:
    with pytest.raises(ProcessingError) as err:
        job.run(CsvToParquet(), **params)
    assert err.value.code == "malformed_csv"
    return err.value.message


def test_converts_and_round_trips(make_job: MakeJob, csv_bytes: bytes, rows) -> None:
    job = make_job(csv_bytes, filename="sales.2024.csv", content_type="text/csv")
    out = job.run(CsvToParquet())
    assert out.filename == "sales.2024.parquet"
    assert out.content_type == "application/vnd.apache.parquet"
    table = read_parquet(job)
    assert table.schema.names == ["id", "price", "name", "active", "created", "score"]
    assert [str(t) for t in table.schema.types] == [
        "int64",
        "double",
        "string",
        "bool",
        "timestamp[ms]",  # Parquet has no seconds unit
        "int64",
    ]
    assert table.to_pylist() == rows
    # Written batch by batch rather than as one table.
    assert pq.ParquetFile(job.output_path).metadata.num_row_groups > 1


def test_progress_per_block_reaches_one(make_job: MakeJob, csv_bytes: bytes) -> None:
    job = make_job(csv_bytes)
    job.run(CsvToParquet())
    assert len(job.progress) >= 4
    assert job.progress == sorted(job.progress)
    assert 0 < job.progress[0] < 0.7
    assert job.progress[-1] == 1.0


@pytest.mark.parametrize(
    ("compression", "codec"),
    [("snappy", "SNAPPY"), ("zstd", "ZSTD"), ("gzip", "GZIP"), ("none", "UNCOMPRESSED")],
)
def test_compression(make_job: MakeJob, compression: str, codec: str) -> None:
    job = make_job(to_csv(make_rows(500)))
    job.run(CsvToParquet(), compression=compression)
    job.result()
    meta = pq.ParquetFile(job.output_path).metadata
    assert meta.row_group(0).column(0).compression == codec
    assert meta.num_rows == 500


def test_custom_delimiter(make_job: MakeJob) -> None:
    data = make_rows(300)
    job = make_job(to_csv(data, delimiter=";"))
    job.run(CsvToParquet(), delimiter=";")
    assert read_parquet(job).to_pylist() == data


def test_tsv_input_defaults_to_tab(make_job: MakeJob) -> None:
    data = make_rows(300)
    job = make_job(
        to_csv(data, delimiter="\t"), filename="x.tsv", content_type="text/tab-separated-values"
    )
    job.run(CsvToParquet())
    assert read_parquet(job).to_pylist() == data


def test_explicit_delimiter_wins_over_tsv_type(make_job: MakeJob) -> None:
    job = make_job(b"a,b\n1,2\n", content_type="text/tab-separated-values")
    job.run(CsvToParquet(), delimiter=",")
    assert read_parquet(job).to_pylist() == [{"a": 1, "b": 2}]


def test_header_only_gives_zero_rows(make_job: MakeJob) -> None:
    job = make_job(b"id,name,price\n", filename="empty.csv")
    job.run(CsvToParquet())
    table = read_parquet(job)
    assert table.num_rows == 0
    assert table.schema.names == ["id", "name", "price"]
    assert job.progress[-1] == 1.0


def test_column_empty_in_first_block_becomes_string(make_job: MakeJob) -> None:
    # Without care, "note" is typed null from the first block and "hello" later would fail.
    n = 200_000
    lines = ["id,note"] + [f"{i}," for i in range(n)] + [f"{n},hello"]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 1 * MiB
    job = make_job(data)
    job.run(CsvToParquet())
    table = read_parquet(job)
    assert table.schema.field("note").type == pa.string()
    assert table.num_rows == n + 1
    assert table.column("note")[-1].as_py() == "hello"


def test_short_row_reports_line_7(make_job: MakeJob) -> None:
    lines = ["a,b,c"] + [f"{i},x,{i}.5" for i in range(2, 7)] + ["7,short"] + ["8,y,8.5"]
    message = malformed(make_job(("\n".join(lines) + "\n").encode()))
    assert message == "line 7: expected 3 columns, got 2"


def test_line_number_counts_blank_lines_and_multiline_values(make_job: MakeJob) -> None:
    data = b'a,b,c\n1,"multi\nline",x\n\n2,y,z\n3,w,v\n4,short\n5,u,t\n'
    message = malformed(make_job(data))
    assert message.startswith("line 7:")


def test_long_row_in_a_later_block(make_job: MakeJob) -> None:
    n = 200_000
    lines = ["a,b"] + [f"{i},{i}" for i in range(n)] + ["1,2,3"]
    message = malformed(make_job(("\n".join(lines) + "\n").encode()))
    assert message == f"line {n + 2}: expected 2 columns, got 3"


def test_bad_value_in_a_later_block_names_column_value_and_line(make_job: MakeJob) -> None:
    n = 200_000  # the first 1 MiB block says "qty" is an integer column
    lines = ["sku,qty"] + [f"s{i},{i}" for i in range(n)] + ["s-bad,twelve", "s-ok,3"]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 2 * MiB
    job = make_job(data)
    message = malformed(job)
    assert f"line {n + 2}" in message
    assert "'twelve'" in message
    assert "'qty'" in message
    assert "int64" in message


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(64 * 1024),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(1000),
        b"a,b\n1,2\n\x00\x01\x02\x03",
        b"",
    ],
    ids=["random", "png", "nul-bytes", "empty"],
)
def test_not_csv_fails_cleanly(make_job: MakeJob, data: bytes) -> None:
    malformed(make_job(data))


def test_empty_file(make_job: MakeJob) -> None:
    assert malformed(make_job(b"")) == "input is empty"


def test_invalid_utf8_header_fails_cleanly(make_job: MakeJob) -> None:
    # Past the sniffed head, so it reaches pyarrow.
    data = b"a" * 9000 + b",\xff\xfe\n1,2\n"
    assert malformed(make_job(data)) == "the header row is not valid UTF-8"


@pytest.mark.parametrize(
    "params",
    [
        {"delimiter": ""},
        {"delimiter": ",,"},
        {"delimiter": '"'},
        {"delimiter": "\n"},
        {"delimiter": "§"},
        {"compression": "lz4"},
        {"compression": None},
        {"header": False},
    ],
)
def test_invalid_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CsvToParquetParams.model_validate(params)


def test_params_schema() -> None:
    schema = CsvToParquetParams.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["compression"]["enum"] == ["snappy", "zstd", "gzip", "none"]
    assert CsvToParquetParams().model_dump() == {"delimiter": ",", "compression": "snappy"}


def test_cancelled_before_start(make_job: MakeJob, csv_bytes: bytes) -> None:
    job = make_job(csv_bytes)
    job.cancel.set()
    with pytest.raises(Cancelled):
        job.run(CsvToParquet())
    assert job.progress == []


def test_cancelled_while_running(make_job: MakeJob, csv_bytes: bytes) -> None:
    job = make_job(csv_bytes, cancel_after_reports=1)
    with pytest.raises(Cancelled):
        job.run(CsvToParquet())
    assert len(job.progress) == 1


def test_accepts_text_types() -> None:
    p = CsvToParquet()
    assert p.accepts("text/csv") and p.accepts("text/tab-separated-values")
    assert not p.accepts("application/octet-stream")
