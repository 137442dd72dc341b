"""What `submit` checks with the server before it uploads a byte: that the processor exists
(else the names it offers, and the nearest to a typo), and that every file fits the caller's
upload limit. An upload refused only after its last byte wastes the whole transfer."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from filejob.client.output import human_size

if TYPE_CHECKING:
    from filejob.client.api import FilejobClient


class Refused(Exception):
    """The run would fail on the server: said before anything was sent."""


def unknown_processor(name: str, available: Sequence[str]) -> str | None:
    """Why `name` will not do (None: it will)."""
    if name in available:
        return None
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    offered = ", ".join(sorted(available)) or "none"
    return f"no processor named {name!r}{hint} (this server offers: {offered})"


def too_large(files: Sequence[Path], limit: int) -> list[str]:
    """What is wrong with each file over the upload `limit`."""
    return [
        f"{file} is {human_size(size)}; this server takes at most {human_size(limit)} per upload"
        for file in files
        if (size := file.stat().st_size) > limit
    ]


def check(client: FilejobClient, processor: str, files: Sequence[Path]) -> None:
    """Raise `Refused` with every reason the server would refuse this run for."""
    why = unknown_processor(processor, [p["name"] for p in client.processors()])
    if why is not None:
        raise Refused(why)
    limits = client.limits()
    if limits is not None:
        problems = too_large(files, int(limits["max_upload_bytes"]))
        if problems:
            raise Refused("; ".join(problems))
