"""The tests' own processors (slow, gated, failing, crashing, leaking...) and the registry
that offers them with the built-in ones."""

from __future__ import annotations

import errno
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from filejob.processors import (
    NoParams,
    Output,
    ProcessingError,
    Processor,
    ProcessorContext,
    RetryableError,
)
from filejob.processors.registry import ProcessorRegistry, builtin_processors


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(50, ge=1, le=10_000)
    step_seconds: float = Field(0.02, ge=0, le=1)
    fail: bool = False
    gate: str | None = None


# Tests open a gate to let a `slow` job finish (or keep it running until they cancel it).
GATES: dict[str, threading.Event] = {}


class Slow(Processor[SlowParams]):
    """Copies its input in `steps` slices with a pause after each, checking for cancellation;
    with `gate`, holds before finishing until the test sets `GATES[gate]`."""

    name = "slow"
    description = "Test processor: a cancellable copy that takes a while."
    Params = SlowParams

    def run(self, ctx: ProcessorContext, params: SlowParams) -> Output:
        data = ctx.input.read()
        size = -(-len(data) // params.steps)  # ceil: partial output exists while it runs
        for step in range(params.steps):
            ctx.check_cancelled()
            ctx.output.write(data[step * size : (step + 1) * size])
            ctx.report((step + 1) / params.steps)
            time.sleep(params.step_seconds)
        gate = GATES.get(params.gate) if params.gate else None
        while gate is not None and not gate.wait(0.01):
            ctx.check_cancelled()
        if params.fail:
            raise ProcessingError("asked to fail", code="asked_to_fail")
        return Output(filename=f"{ctx.input_filename}.out", content_type="application/octet-stream")


class SlowChild(Slow):
    """`slow` in a child process of its own: stopped by its parent, never by itself (a child
    is never handed the cancel event, so its `check_cancelled()` never fires)."""

    name = "slow-child"
    description = "Test processor: a slow copy in a child process."
    isolation = "process"


class Straggler(Processor[NoParams]):
    """Starts a background process in its own process group, then returns at once: what a
    processor leaves behind must not outlive its child. The result is that process's pid."""

    name = "straggler"
    description = "Test processor: leaves a background process behind."
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        left = subprocess.Popen(["sleep", "120"])
        ctx.output.write(str(left.pid).encode())
        return Output("pid.txt", "text/plain")


class Crash(Processor[NoParams]):
    """A processor with a bug: raises something that is not a ProcessingError."""

    name = "crash"
    description = "Test processor: always raises ZeroDivisionError."

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        ctx.output.write(b"partial")
        raise ZeroDivisionError("bug in processor")


class FlakyParams(BaseModel):
    key: str
    failures: int = 1
    kind: str = "retryable"  # retryable | oserror | enospc | permanent


# Runs per key, so that a test can make a job fail its first N attempts.
FLAKY_RUNS: dict[str, int] = {}


class Flaky(Processor[FlakyParams]):
    """Fails its first `failures` runs (per `key`) in the way `kind` says, then copies."""

    name = "flaky"
    description = "Test processor: fails a given number of times."
    Params = FlakyParams

    def run(self, ctx: ProcessorContext, params: FlakyParams) -> Output:
        FLAKY_RUNS[params.key] = runs = FLAKY_RUNS.get(params.key, 0) + 1
        if runs <= params.failures:
            ctx.output.write(b"partial")
            if params.kind == "retryable":
                raise RetryableError(f"flaky run {runs}", code="flaky")
            if params.kind == "oserror":
                raise OSError(errno.EIO, "I/O error")
            if params.kind == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device")
            raise ProcessingError(f"permanent on run {runs}", code="permanent")
        ctx.output.write(ctx.input.read())
        return Output(filename="flaky.out", content_type="application/octet-stream")


class InflateParams(BaseModel):
    factor: int = 2


class Inflate(Processor[InflateParams]):
    """Writes its input `factor` times: a result larger than the input."""

    name = "inflate"
    description = "Test processor: repeats the input."
    Params = InflateParams

    def run(self, ctx: ProcessorContext, params: InflateParams) -> Output:
        for _ in range(params.factor):
            ctx.input.seek(0)
            for chunk in ctx.chunks():
                ctx.output.write(chunk)
        return Output(filename="inflated", content_type="application/octet-stream")


class StubbornParams(BaseModel):
    seconds: float = 3.0


class Stubborn(Processor[StubbornParams]):
    """Ignores cancellation: one long call, as a C extension stuck in a decode would be."""

    name = "stubborn"
    description = "Test processor: sleeps without checking for cancellation."
    Params = StubbornParams
    timeout = 120.0

    def run(self, ctx: ProcessorContext, params: StubbornParams) -> Output:
        ctx.output.write(b"partial")
        time.sleep(params.seconds)
        ctx.output.write(b"rest")
        return Output(filename="stubborn.out", content_type="application/octet-stream")


class SpinParams(BaseModel):
    seconds: float = 30.0
    exit_code: int | None = None  # die abruptly, as a segfault or the OOM killer would
    retryable_key: str | None = None  # a marker file: the first run fails, retryably
    pid_file: str | None = None  # where the child writes its pid, for tests to check on it


class Spin(Processor[SpinParams]):
    """Runs in its own process and burns CPU without ever checking for cancellation."""

    name = "spin"
    description = "Test processor: a CPU-bound loop in a child process."
    Params = SpinParams
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: SpinParams) -> Output:
        if params.pid_file:
            Path(params.pid_file).write_text(str(os.getpid()))
        ctx.output.write(b"partial")
        ctx.report(0.5)
        if params.exit_code is not None:
            os._exit(params.exit_code)
        if params.retryable_key is not None:
            marker = Path(params.retryable_key)
            if not marker.exists():
                marker.write_text("failed once")
                raise RetryableError("first run fails", code="spin_retry")
        deadline = time.monotonic() + params.seconds
        while time.monotonic() < deadline:
            sum(range(10_000))
        ctx.output.write(ctx.input.read())
        return Output(filename="spun", content_type="application/octet-stream")


class TwiceParams(BaseModel):
    gate: str


TWICE_RUNS: dict[str, int] = {}


class Twice(Processor[TwiceParams]):
    """A worker presumed dead that is in fact still running: the first run of a job holds on
    `GATES[gate]` without checking for cancellation, then writes b"first"; the second holds on
    `GATES[gate + "-2"]`, then writes b"second"."""

    name = "twice"
    description = "Test processor: a first attempt that outlives its replacement."
    Params = TwiceParams

    def run(self, ctx: ProcessorContext, params: TwiceParams) -> Output:
        runs = TWICE_RUNS[params.gate] = TWICE_RUNS.get(params.gate, 0) + 1
        GATES[params.gate if runs == 1 else params.gate + "-2"].wait(30)
        ctx.output.write(b"first" if runs == 1 else b"second")
        return Output(filename="out.bin", content_type="application/octet-stream")


class LeakyParams(BaseModel):
    kind: str = "permanent"  # permanent | retryable | oserror | bug


class Leaky(Processor[LeakyParams]):
    """A third-party processor whose errors name server paths, as library errors do: the file
    object it was handed, the folder it runs in, its own source file, the temp folder."""

    name = "leaky"
    description = "Test processor: fails with server paths in its error message."
    Params = LeakyParams

    def run(self, ctx: ProcessorContext, params: LeakyParams) -> Output:
        ctx.output.write(b"partial")
        where = f"{ctx.input!r} in {os.getcwd()} ({__file__}, {tempfile.gettempdir()})"
        if params.kind == "retryable":
            raise RetryableError(f"cannot read {where}", code="leaky")
        if params.kind == "oserror":
            missing = Path(tempfile.gettempdir()) / "filejob-leaky" / "missing.bin"
            missing.open("rb")  # FileNotFoundError, with the path
        if params.kind == "bug":
            raise ValueError(f"unexpected state of {where}")
        raise ProcessingError(f"cannot read {where}", code="leaky")


class LeakyChild(Leaky):
    """`leaky` in a child process, where its input is a file opened by path."""

    name = "leaky-child"
    isolation = "process"


def test_registry() -> ProcessorRegistry:
    """The built-in processors and all of the above: what the tests' apps and workers offer."""
    return ProcessorRegistry(
        [
            *builtin_processors(),
            Slow(),
            Crash(),
            Flaky(),
            Inflate(),
            Stubborn(),
            Spin(),
            Twice(),
            SlowChild(),
            Straggler(),
            Leaky(),
            LeakyChild(),
        ]
    )


test_registry.__test__ = False  # type: ignore[attr-defined]
