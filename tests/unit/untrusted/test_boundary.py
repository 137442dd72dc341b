"""Numbers from untrusted text never raise: what is not plain ASCII digits is None."""

from __future__ import annotations

import pytest

from filejob.untrusted.boundary import BEYOND_ANY_SIZE, parse_count


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("007", 7),
        ("123456789012345678", 123456789012345678),
        ("9" * 19, BEYOND_ANY_SIZE),
        ("1" * 5000, BEYOND_ANY_SIZE),  # int() itself refuses over 4300 digits
        ("0" * 5000 + "42", 42),
        ("", None),
        ("²", None),  # str.isdigit() says yes; int() says no
        ("١٢", None),  # Arabic-Indic digits
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("0x10", None),
    ],
)
def test_parse_count(text: str, value: int | None) -> None:
    assert parse_count(text) == value
