"""Numbers read from untrusted text (headers, query strings, cursors).

`str.isdigit()` accepts characters such as "²" that `int()` refuses, and `int()` refuses
strings of over 4300 digits: either would turn a client's typo into a 500.
"""

from __future__ import annotations

BEYOND_ANY_SIZE = 10**18  # past 18 digits (an exabyte), every number is simply "too large"


def parse_count(text: str) -> int | None:
    """A non-negative decimal in ASCII digits, capped at BEYOND_ANY_SIZE; None if `text` is
    anything else (empty, signed, spaced, other scripts)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else BEYOND_ANY_SIZE
