"""Processors that show what a pooled worker process keeps from job to job: memory it holds,
processes and threads a job leaves behind. Each result is JSON naming the worker's pid."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

from pydantic import BaseModel, Field

from filejob.processors import NoParams, Output, Processor, ProcessorContext
from filejob.processors.registry import ProcessorRegistry
from tests.support.processors import test_registry

# What `hoard` jobs hold on to, for the worker's whole life: a leak, as a library's cache.
HELD: list[bytes] = []


def _result(ctx: ProcessorContext, **fields: int) -> Output:
    ctx.output.write(json.dumps({"pid": os.getpid(), **fields}).encode())
    return Output("result.json", "application/json")


class HoardParams(BaseModel):
    mebibytes: int = Field(0, ge=0, le=256)


class Hoard(Processor[HoardParams]):
    """Keeps `mebibytes` more of resident memory, for as long as its process lives."""

    name = "hoard"
    description = "Test processor: grows its process's RSS and keeps it."
    Params = HoardParams
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: HoardParams) -> Output:
        HELD.append(b"x" * (params.mebibytes * 1024 * 1024))  # written: resident, not reserved
        return _result(ctx)


class Orphan(Processor[NoParams]):
    """Leaves a process behind the way a shell does (`cmd &`): the shell exits, its
    background child is orphaned, still in the worker's process group. `left` is its pid."""

    name = "orphan"
    description = "Test processor: leaves an orphaned background process behind."
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        shell = subprocess.run(
            ["sh", "-c", "sleep 120 >/dev/null 2>&1 & echo $!"],
            capture_output=True,
            check=True,
            text=True,
        )
        return _result(ctx, left=int(shell.stdout))


class Escapee(Processor[NoParams]):
    """Leaves a process behind in a session of its own (`setsid cmd &`): out of the worker's
    process group. `left` is its pid."""

    name = "escapee"
    description = "Test processor: leaves a process behind in a new session."
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        child = subprocess.Popen(
            ["sleep", "120"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return _result(ctx, left=child.pid)


class Lingerer(Processor[NoParams]):
    """Returns while a thread it started runs on."""

    name = "lingerer"
    description = "Test processor: leaves a thread running."
    isolation = "process"

    def run(self, ctx: ProcessorContext, params: NoParams) -> Output:
        threading.Thread(target=time.sleep, args=(120,), daemon=True).start()
        return _result(ctx)


def pool_registry() -> ProcessorRegistry:
    """The tests' registry and the processors above."""
    return ProcessorRegistry([*test_registry(), Hoard(), Orphan(), Escapee(), Lingerer()])
