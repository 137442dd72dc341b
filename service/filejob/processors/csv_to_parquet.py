"""Convert CSV to Parquet, streaming record batches with pyarrow."""

from __future__ import annotations

import csv
import re
import threading
from pathlib import PurePosixPath
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from filejob.processors.base import Output, ProcessingError, Processor, ProcessorContext
from filejob.processors.sniff import SNIFF_BYTES, sniff

BLOCK_SIZE = 1024 * 1024

# Row details are parsed from pyarrow's messages rather than taken from an invalid_row_handler:
# conversion errors never reach that hook, and pyarrow fails inside it (an "exception ignored"
# on stderr) when the row's text is not UTF-8. "Row #" counts the header and skips blank lines;
# _locate() turns it into a physical line number.
_COLUMN_COUNT = re.compile(r"Row #(\d+): Expected (\d+) columns, got (\d+)")
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to ([^:]+): invalid value '(.*)'",
    re.DOTALL,
)


class CsvToParquetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(
        ",",
        min_length=1,
        max_length=1,
        description=(
            "Field delimiter, a single ASCII character. Defaults to ',' (a tab for "
            "text/tab-separated-values input)."
        ),
    )
    compression: Literal["snappy", "zstd", "gzip", "none"] = Field(
        "snappy", description="Compression codec for the Parquet column chunks."
    )

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, value: str) -> str:
        # pyarrow takes a single byte, and these would make the quoting rules ambiguous.
        if not value.isascii() or value in '"\r\n':
            raise ValueError("delimiter must be one ASCII character other than a quote or newline")
        return value


class _Source:
    """What pyarrow reads ctx.input through: counts bytes for progress, and can be cut off.

    pyarrow reads ahead on a background thread (about 32 blocks), which may still be calling
    read() after the reader has raised. Once detached, reads return EOF without touching
    ctx.input, so it can be re-read here or closed by the runner without a race.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._lock = threading.Lock()
        self._detached = False
        self.consumed = 0

    @property
    def closed(self) -> bool:
        return self._detached or self._raw.closed

    def read(self, size: int = -1) -> bytes:
        with self._lock:
            if self._detached:
                return b""
            data = self._raw.read(size)
            self.consumed += len(data)
            return data

    def detach(self) -> None:
        with self._lock:
            self._detached = True


class CsvToParquet(Processor[CsvToParquetParams]):
    name = "csv-to-parquet"
    description = (
        "Convert a CSV (or TSV) file with a header row to Parquet. Column types are inferred "
        "from the first megabyte of data."
    )
    content_types = ("text/csv", "text/plain", "text/tab-separated-values")
    Params = CsvToParquetParams
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: CsvToParquetParams) -> Output:
        delimiter = params.delimiter
        if (
            "delimiter" not in params.model_fields_set
            and ctx.input_content_type == "text/tab-separated-values"
        ):
            delimiter = "\t"
        ctx.check_cancelled()
        _require_text(ctx)

        source, reader = _open(ctx, delimiter)
        total = max(ctx.input_size, 1)
        compression = None if params.compression == "none" else params.compression
        try:
            # pyarrow wraps a Python file object without taking ownership: ParquetWriter.close()
            # writes the footer but only closes sinks it opened itself from a path. The `with`
            # also closes on errors, so no finaliser writes a footer into ctx.output later.
            with pq.ParquetWriter(ctx.output, reader.schema, compression=compression) as writer:
                parsed = 0
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except ValueError as exc:  # ArrowInvalid, or UnicodeDecodeError
                        source.detach()
                        raise _malformed(ctx, exc, delimiter, reader.schema) from None
                    writer.write_batch(batch)
                    # Bytes consumed run ahead of the work done because of the read-ahead;
                    # each batch comes from one block of about BLOCK_SIZE bytes.
                    parsed += BLOCK_SIZE
                    ctx.report(min(parsed, source.consumed) / total)
                    ctx.check_cancelled()
        finally:
            source.detach()
        ctx.report(1.0)
        stem = PurePosixPath(ctx.input_filename).stem or "data"
        return Output(filename=f"{stem}.parquet", content_type="application/vnd.apache.parquet")


def _require_text(ctx: ProcessorContext) -> None:
    # pyarrow will "parse" many binary files into a garbled column or two; refuse them up front.
    head = ctx.input.read(SNIFF_BYTES)
    ctx.input.seek(0)
    if not head:
        raise ProcessingError("input is empty", code="malformed_csv")
    if not sniff(head).startswith("text/"):
        raise ProcessingError("input is not a text file, so not CSV", code="malformed_csv")


def _open(ctx: ProcessorContext, delimiter: str) -> tuple[_Source, pacsv.CSVStreamingReader]:
    source = _Source(ctx.input)
    try:
        reader = _open_csv(source, delimiter, {})
        # pyarrow decodes header names lazily; a non-UTF-8 header fails here, not in the writer.
        names = reader.schema.names
        # A column empty throughout the first block is typed null, so any later value would
        # fail; read such columns as strings instead (this re-reads the first block).
        types = reader.schema.types
        nulls = {n: pa.string() for n, t in zip(names, types, strict=True) if pa.types.is_null(t)}
        if nulls:
            source.detach()
            ctx.input.seek(0)
            source = _Source(ctx.input)
            reader = _open_csv(source, delimiter, nulls)
    except ValueError as exc:
        source.detach()
        raise _malformed(ctx, exc, delimiter, None) from None
    return source, reader


def _open_csv(
    source: _Source, delimiter: str, column_types: dict[str, pa.DataType]
) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        source,
        # Single-threaded so that pyarrow numbers the rows it complains about.
        read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE, use_threads=False),
        # Quoted values may span lines; without this a block boundary inside one splits the row.
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=column_types),
    )


def _malformed(
    ctx: ProcessorContext, exc: ValueError, delimiter: str, schema: pa.Schema | None
) -> ProcessingError:
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        message = "the header row is not valid UTF-8"
    elif m := _COLUMN_COUNT.search(text):
        where = _locate(ctx, delimiter, int(m[1]))
        message = f"{where}: expected {m[2]} columns, got {m[3]}"
    elif m := _CONVERSION.search(text):
        index, arrow_type, value = int(m[1]), m[3], _clip(m[4])
        column = schema.field(index).name if schema and index < len(schema) else f"#{index + 1}"
        where = _locate(ctx, delimiter, int(m[2])) if m[2] else "a later row"
        message = (
            f"{where}: value {value!r} in column {column!r} is not {arrow_type}, the type "
            "inferred from the first rows of the file"
        )
    else:
        message = f"not valid CSV: {_clip(text, 200)}"
    return ProcessingError(message, code="malformed_csv")


def _locate(ctx: ProcessorContext, delimiter: str, row_number: int) -> str:
    """Turn pyarrow's row number (header = 1, blank lines skipped) into "line N".

    They differ when there are blank lines or quoted values spanning lines, so re-read the
    input up to that row with the csv module, which counts physical lines. Only runs on the
    error path.
    """
    ctx.input.seek(0)
    lines = (raw.decode("utf-8", "replace") for raw in ctx.input)
    reader = csv.reader(lines, delimiter=delimiter)
    rows = 0
    try:
        while True:
            start = reader.line_num + 1
            if next(reader):  # blank lines come back as [] and pyarrow does not count them
                rows += 1
                if rows == row_number:
                    return f"line {start}"
                if rows % 10_000 == 0:
                    ctx.check_cancelled()
    except (csv.Error, StopIteration):
        return f"row {row_number}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
