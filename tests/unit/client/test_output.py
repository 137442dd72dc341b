"""What people read: sizes in binary units, times relative to now, durations as typed, the
default server, and the refusals `submit` makes before uploading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from filejob.client.options import default_server
from filejob.client.output import human_size, parse_seconds, parse_when, relative_time
from filejob.client.preflight import too_large, unknown_processor


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (3 * 1024**3 // 2, "1.5 GiB"),
        (5 * 1024**5, "5.0 PiB"),
    ],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=12), "12 s ago"),
        (timedelta(minutes=3, seconds=30), "3 min ago"),
        (timedelta(hours=5), "5 h ago"),
        (timedelta(days=2, hours=3), "2 d ago"),
        (timedelta(days=45), "2026-01-15"),
        (-timedelta(seconds=5), "just now"),  # a server clock a little ahead
    ],
)
def test_relative_time(ago: timedelta, shown: str) -> None:
    stamp = (NOW - ago).isoformat().replace("+00:00", "Z")
    assert relative_time(stamp, now=NOW) == shown


def test_since_takes_durations_and_dates() -> None:
    before = datetime.now(UTC)
    assert before - timedelta(minutes=10, seconds=5) < parse_when("10m") <= before
    assert parse_when("3d") < parse_when("2h") < parse_when("90s")
    assert parse_when("2026-03-01T12:00:00+00:00") == NOW
    naive = parse_when("2026-03-01T12:00:00")  # local time
    assert naive == datetime(2026, 3, 1, 12, 0).astimezone(UTC)
    with pytest.raises(typer.BadParameter):
        parse_when("yesterday")


def test_ttl_takes_seconds_and_durations() -> None:
    assert [parse_seconds(t) for t in ("3600", "90s", "10m", "2h", "7d")] == [
        3600,
        90,
        600,
        7200,
        604800,
    ]
    with pytest.raises(typer.BadParameter):
        parse_seconds("soon")


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"FILEJOB_PORT": "8123"}, "http://127.0.0.1:8123"),
        ({"FILEJOB_HOST": "0.0.0.0", "FILEJOB_PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"FILEJOB_HOST": "::"}, "http://127.0.0.1:8000"),
        ({"FILEJOB_HOST": "::1"}, "http://[::1]:8000"),
        ({"FILEJOB_HOST": "files.internal"}, "http://files.internal:8000"),
    ],
)
def test_the_default_server_is_where_serve_listens(env: dict[str, str], url: str) -> None:
    assert default_server(env) == url


def test_an_unknown_processor_is_named_with_the_nearest() -> None:
    offered = ["checksum", "compress", "thumbnail"]
    assert unknown_processor("compress", offered) is None
    assert unknown_processor("compres", offered) == (
        "no processor named 'compres'; did you mean 'compress'? "
        "(this server offers: checksum, compress, thumbnail)"
    )
    assert unknown_processor("zzz", offered) == (
        "no processor named 'zzz' (this server offers: checksum, compress, thumbnail)"
    )


def test_files_over_the_limit_are_named_in_human_units(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"x" * 1024)
    big.write_bytes(b"x" * 3072)
    assert too_large([small, big], 2048) == [
        f"{big} is 3.0 KiB; this server takes at most 2.0 KiB per upload"
    ]
