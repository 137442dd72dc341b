"""How the client shows things to people: sizes in binary units, times relative to now,
durations typed as "10m", and tables (Rich on a terminal, tab-separated lines in a pipe)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import typer

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(i?)b?|b)?\s*$", re.IGNORECASE)


def human_size(size: float) -> str:
    """1536 -> "1.5 KiB"; under 1 KiB, bytes: "512 B"."""
    if size < 1024:
        return f"{int(size)} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def parse_size(text: str, option: str = "") -> int:
    """A size as people type it -> bytes: "1048576", "512KiB", "64MiB" or "64M" (binary),
    "100MB" or "1.5GB" (decimal)."""
    match = _SIZE.match(text)
    if not match:
        raise typer.BadParameter(
            f"{text!r} is not a size (bytes, or 512KiB, 64MiB, 2GiB)", param_hint=option or None
        )
    number, prefix, binary = match.groups()
    power = "kmgtp".index(prefix.lower()) + 1 if prefix else 0
    decimal = prefix is not None and not binary and text.strip()[-1:] in "bB"
    return int(float(number) * (1000 if decimal else 1024) ** power)


def parse_when(text: str) -> datetime:
    """When "--since" means: a duration back from now ("90s", "10m", "2h", "3d", "1w") or an
    ISO 8601 date or time (local time unless it names its zone)."""
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (10m, 2h, 3d) nor an ISO date"
        ) from None
    return when.astimezone(UTC)  # a naive time is taken as local


def parse_seconds(text: str) -> int:
    """A duration as "3600", "90s", "10m", "2h", "3d" -> seconds."""
    if text.strip().isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration (3600, 10m, 2h, 3d)")
    return int(float(match.group(1)) * _SECONDS[match.group(2).lower()])


def parse_time(value: str) -> datetime:
    """A timestamp of the API (ISO 8601, "Z" or an offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def relative_time(value: str, now: datetime | None = None) -> str:
    """An API timestamp as people say it: "12 s ago", "3 min ago", "5 h ago", "2 d ago";
    older than 30 days, the date."""
    when = parse_time(value)
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    if seconds < 1:
        return "just now"
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{int(seconds // size)} {unit} ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)} d ago"
    return when.date().isoformat()


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], terminal: bool) -> None:
    """A Rich table on a terminal (the first column never wrapped: an id is only useful
    whole); in a pipe, a header of upper-case names and tab-separated lines."""
    if terminal:
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns)
        table.columns[0].no_wrap = True
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    typer.echo("\t".join(column.upper() for column in columns))
    for row in rows:
        typer.echo("\t".join(row))
