"""HTTP conditional and range request rules (RFC 9110 §13, §14) for one representation."""

from __future__ import annotations

from dataclasses import dataclass

from filejob.errors import RangeNotSatisfiable
from filejob.untrusted.boundary import parse_count


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match: weak comparison against a list of tags, or `*`."""
    if header.strip() == "*":
        return True
    tags = (t.strip() for t in header.split(","))
    return any(t.removeprefix("W/") == etag.removeprefix("W/") for t in tags)


def parse_range(header: str, size: int) -> ByteRange | None:
    """The single byte range asked for, or None to serve the whole body.

    Unparseable headers, other units and multi-range requests are ignored (RFC 9110 lets a
    server ignore Range) and get the full body; a syntactically valid range that cannot be
    satisfied raises RangeNotSatisfiable (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    start, end = parse_count(first), parse_count(last)
    if (start is None and first) or (end is None and last):
        return None
    if start is None:
        if end is None:
            return None
        if end == 0 or size == 0:  # `end` is a suffix length here
            raise _unsatisfiable(size)
        return ByteRange(max(0, size - end), size - 1)
    end = end if end is not None else size - 1
    if last and end < start:
        return None  # invalid per RFC 9110 §14.1.1: ignore the header
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(start, min(end, size - 1))


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The result has {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
    )
