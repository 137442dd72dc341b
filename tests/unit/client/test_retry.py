"""What the client tries again, how long it waits first (client/retry.py), and how it reads a
size (client/output.py's parse_size, for --resumable-above)."""

from __future__ import annotations

import threading

import httpx
import pytest
import typer

from filejob.client.errors import Aborted, ApiError
from filejob.client.output import parse_size
from filejob.client.retry import Backoff, transient


def test_what_is_tried_again() -> None:
    assert transient(httpx.ConnectError("refused"))
    assert transient(httpx.ReadTimeout("silent"))
    assert transient(httpx.RemoteProtocolError("cut"))
    for status in (408, 409, 423, 429, 500, 502, 503, 504):
        assert transient(ApiError(status, "x", "x"))
    assert transient(ApiError(400, "upload_interrupted", "taken over"))
    for status, code in ((400, "malformed_request"), (404, "upload_not_found"), (422, "x")):
        assert not transient(ApiError(status, code, "x"))
    assert not transient(ValueError("a bug"))


def test_waits_grow_to_the_cap_and_never_undercut_retry_after() -> None:
    backoff = Backoff(first=1, cap=8)
    waits = []
    for failures in range(1, 7):
        backoff.failures = failures
        waits.append(backoff.delay(httpx.ConnectError("x")))
    bounds = [1, 2, 4, 8, 8, 8]
    assert all(bound / 2 <= wait <= bound for wait, bound in zip(waits, bounds, strict=True))
    assert backoff.delay(ApiError(503, "busy", "x", retry_after=20)) == 20
    assert backoff.delay(ApiError(503, "busy", "x", retry_after=1e9)) == 60


def test_the_tries_run_out_and_a_refusal_is_raised_at_once() -> None:
    backoff = Backoff(retries=2, first=0)
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(httpx.ConnectError):
        backoff.call(down, None)
    assert len(calls) == 3
    with pytest.raises(ApiError):
        Backoff(first=0).wait_after(ApiError(422, "invalid_params", "x"), None)


def test_ctrl_c_ends_a_wait() -> None:
    abort = threading.Event()
    abort.set()
    with pytest.raises(Aborted):
        Backoff(first=3600).wait_after(httpx.ConnectError("x"), abort)
    with pytest.raises(Aborted):
        Backoff().call(lambda: None, abort)


def test_sizes() -> None:
    assert parse_size("1048576") == 1 << 20
    assert parse_size("64MiB") == parse_size("64M") == parse_size("64mib") == 64 << 20
    assert parse_size("512KiB") == 512 << 10
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size("100MB") == 100_000_000
    assert parse_size("2 GiB") == 2 << 30 and parse_size("0") == 0
    for bad in ("", "MiB", "-1", "1 XB", "64 MiBs"):
        with pytest.raises(typer.BadParameter):
            parse_size(bad)
