"""HTTP conditional and range request rules (RFC 9110 §13, §14) for one representation."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import RangeNotSatisfiable


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
    if not (_is_digits(first) or first == "") or not (_is_digits(last) or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = _number(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = _number(first)
    end = _number(last) if last else size - 1
    if last and end < start:
        return None  # invalid per RFC 9110 §14.1.1: ignore the header
    if start >= size:
        raise _unsatisfiable(size)
    return ByteRange(start, min(end, size - 1))


_BEYOND_ANY_SIZE = 10**18


def _is_digits(text: str) -> bool:
    # ASCII only: str.isdigit() also takes "²" (a Latin-1 header byte), which int() refuses.
    return text.isascii() and text.isdigit()


def _number(digits: str) -> int:
    """A byte position of any length. int() refuses over 4300 digits; past 18 (an exabyte)
    every position is beyond any size, so it is capped instead of converted."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND_ANY_SIZE


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"The result has {size} bytes.", headers={"Content-Range": f"bytes */{size}"}
    )
