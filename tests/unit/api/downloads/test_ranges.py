from __future__ import annotations

import pytest

from filejob.api.downloads.ranges import ByteRange, etag_matches, parse_range
from filejob.errors import RangeNotSatisfiable


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-", ByteRange(0, 99)),
        ("bytes=-1", ByteRange(99, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=10-1000", ByteRange(10, 99)),
        ("bytes= 5 - 6 ", ByteRange(5, 6)),
        ("bytes=6-5", None),
        ("bytes=0-1,3-4", None),
        ("bytes=a-b", None),
        ("bytes=-", None),
        ("lines=0-1", None),
        ("bytes", None),
    ],
)
def test_parse_range(header: str, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.headers["Content-Range"] == f"bytes */{size}"


def test_etag_matching() -> None:
    assert etag_matches('"a"', '"a"')
    assert etag_matches('W/"a"', '"a"')
    assert etag_matches('"b", "a"', '"a"')
    assert etag_matches("*", '"a"')
    assert not etag_matches('"b"', '"a"')
