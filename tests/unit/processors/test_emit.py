"""`ctx.emit()`: what a processor may ask for, checked the same way in a thread or a child."""

from __future__ import annotations

import io
from typing import BinaryIO

import pytest

from filejob.processors import ProcessorContext


def context(opened: list[tuple[str, str]] | None = None) -> ProcessorContext:
    def emitter(filename: str, content_type: str) -> BinaryIO:
        assert opened is not None
        opened.append((filename, content_type))
        return io.BytesIO()

    return ProcessorContext(
        input=io.BytesIO(b"in"),
        input_size=2,
        input_filename="in",
        input_content_type="application/octet-stream",
        output=io.BytesIO(),
        emitter=emitter if opened is not None else None,
    )


def test_emit_opens_a_stream_per_output() -> None:
    opened: list[tuple[str, str]] = []
    ctx = context(opened)
    with ctx.emit("a.png", "image/png") as stream:
        stream.write(b"png")
    ctx.emit("b.json", "application/vnd.api+json")
    assert opened == [("a.png", "image/png"), ("b.json", "application/vnd.api+json")]


@pytest.mark.parametrize(
    "content_type",
    ["", "png", "image/", "text/plain; charset=utf-8", "a/b\r\nX: y", "x/" + "y" * 200],
)
def test_emit_refuses_what_is_not_a_content_type(content_type: str) -> None:
    opened: list[tuple[str, str]] = []
    with pytest.raises(ValueError, match="content type"):
        context(opened).emit("a", content_type)
    assert opened == []


def test_a_context_without_an_emitter_says_so() -> None:
    with pytest.raises(RuntimeError, match="emitter"):
        context().emit("a", "text/plain")
