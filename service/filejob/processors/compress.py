"""Compress the input with gzip or zstd, streaming."""

from __future__ import annotations

import gzip
from contextlib import AbstractContextManager
from typing import BinaryIO, Literal, Protocol, Self

import zstandard
from pydantic import BaseModel, ConfigDict, Field, model_validator

from filejob.processors.base import Output, Processor, ProcessorContext

# format -> (default level, min level, max level, filename suffix, content type)
_FORMATS: dict[str, tuple[int, int, int, str, str]] = {
    "gzip": (6, 1, 9, ".gz", "application/gzip"),
    "zstd": (3, 1, 19, ".zst", "application/zstd"),
}


class CompressParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["gzip", "zstd"] = Field("zstd", description="Compression format.")
    # The per-format range is enforced below; ge/le give the schema the overall bounds.
    level: int | None = Field(
        None,
        ge=1,
        le=19,
        description=(
            "Compression level: 1-9 for gzip (default 6), 1-19 for zstd (default 3). "
            "Higher is smaller and slower."
        ),
    )

    @model_validator(mode="after")
    def _check_level(self) -> Self:
        default, low, high, _, _ = _FORMATS[self.format]
        if self.level is None:
            self.level = default
        elif not low <= self.level <= high:
            raise ValueError(f"level for {self.format} must be between {low} and {high}")
        return self


class _Sink(Protocol):
    """What the loop writes the input into: either compressor's stream writer."""

    def write(self, data: bytes, /) -> int: ...


def _compressor(out: BinaryIO, params: CompressParams) -> AbstractContextManager[_Sink]:
    assert params.level is not None  # filled in by the validator
    if params.format == "gzip":
        # mtime=0 and an empty filename keep the header free of the runner's temp-file name and
        # the clock, so the same input always gives the same bytes. GzipFile.close() writes the
        # trailer but leaves a passed-in fileobj open.
        return gzip.GzipFile(
            filename="", fileobj=out, mode="wb", compresslevel=params.level, mtime=0
        )
    # closefd=False: closing the writer ends the zstd frame without closing ctx.output.
    return zstandard.ZstdCompressor(level=params.level).stream_writer(out, closefd=False)


class Compress(Processor[CompressParams]):
    name = "compress"
    description = "Compress the file with gzip or zstd."
    content_types = ("*/*",)
    Params = CompressParams
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: CompressParams) -> Output:
        _, _, _, suffix, content_type = _FORMATS[params.format]
        # The context manager finishes the stream even when cancelled or failing, so nothing is
        # left to be flushed into ctx.output later by a finaliser, after the runner is done.
        with _compressor(ctx.output, params) as sink:
            for chunk in ctx.chunks():
                sink.write(chunk)
        ctx.report(1.0)
        return Output(
            filename=f"{ctx.input_filename or 'input'}{suffix}", content_type=content_type
        )
