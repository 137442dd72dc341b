"""Reading untrusted input: numbers from text (headers, query strings, cursors), and the
boundary that blames the input for whatever interpreting it raises.

`str.isdigit()` accepts characters such as "²" that `int()` refuses, and `int()` refuses
strings of over 4300 digits: either would turn a client's typo into a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from filejob.errors import FilejobError

log = logging.getLogger(__name__)

BEYOND_ANY_SIZE = 10**18  # past 18 digits (an exabyte), every number is simply "too large"


def parse_count(text: str) -> int | None:
    """A non-negative decimal in ASCII digits, capped at BEYOND_ANY_SIZE; None if `text` is
    anything else (empty, signed, spaced, other scripts)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else BEYOND_ANY_SIZE


@contextmanager
def interpreting(what: str, error: Callable[[str], FilejobError]) -> Iterator[None]:
    """The boundary around code that interprets a client's bytes (a multipart body, a params
    document). Whatever such code raises, other than our own errors and the environment's
    (`OSError`: the disk, the network), was caused by the input, whatever its type: a decoder's
    `UnicodeError`, `int()`'s digit limit, a `RecursionError`, the next surprise. It becomes
    `error(...)`, a 4xx naming `what`, instead of a 500. One line is logged at warning level
    (what, and the exception), and the traceback at debug level: a parser bug behind such
    answers stays visible, and hostile clients cannot fill the log with tracebacks."""
    try:
        yield
    except (FilejobError, OSError):
        raise
    except Exception as exc:
        log.warning("%s could not be read: %s: %s", what, type(exc).__name__, exc)
        log.debug("%s could not be read", what, exc_info=True)
        raise error(f"{what} could not be read ({type(exc).__name__}).") from exc
