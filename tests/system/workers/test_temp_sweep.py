"""Workers sweep the temp files a killed worker left in `<data_dir>/tmp` (its local copies
of inputs, its partial outputs), as API servers do, and never one another process still holds,
however old: processes on one machine may share the data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from filejob.config import Settings
from filejob.storage.tmpfiles import TempFiles
from tests.support.processors import test_registry
from tests.support.queue import running_worker
from tests.support.wait import wait_until_async

GRACE = 600.0  # FILEJOB_ORPHAN_GRACE in these tests

_HOLDER = """
import sys
from pathlib import Path
from filejob.storage.tmpfiles import TempFiles
file, path = TempFiles(Path(sys.argv[1])).open_named()
file.write(b"partial output")
file.flush()
print(path, flush=True)
sys.stdin.read()  # holds the file open until the test ends or kills it
"""


def backdate(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def plant(tmp: Path, name: str, *, age: float) -> Path:
    path = tmp / name
    path.write_bytes(b"left behind")
    backdate(path, age)
    return path


@pytest.fixture
def holder(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another live process of the same data dir, writing a temp file (aged past the grace,
    as a long job's output can be)."""
    tmp = data_dir / "tmp"
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        path = Path(process.stdout.readline().strip())
        assert path.parent == tmp, "the holder did not start"
        backdate(path, 2 * GRACE)
        yield process, path
    finally:
        process.kill()
        process.wait()


async def test_a_worker_sweeps_stale_temp_files_and_spares_live_ones(
    settings: Settings, holder: tuple[subprocess.Popen[str], Path]
) -> None:
    settings = settings.model_copy(update={"orphan_grace": GRACE})
    tmp = settings.data_dir / "tmp"
    # What a SIGKILLed worker leaves: the local copy of an input, a partial output, a result
    # staged for linking.
    stale = [
        plant(tmp, "tmpa1b2c3.part", age=GRACE + 60),
        plant(tmp, "tmpd4e5f6.part", age=2 * GRACE),
        plant(tmp, "3f2a.4242.12345.staged", age=GRACE + 1),
    ]
    fresh = plant(tmp, "tmpg7h8i9.part", age=GRACE / 2)  # may be another process's, starting
    _, held = holder
    async with running_worker(settings, test_registry()):
        await wait_until_async(lambda: _gone(stale), timeout=30)
    assert fresh.exists()
    assert held.exists()  # old, but another process still writes it


def test_the_sweep_spares_a_file_another_process_holds_until_it_dies(
    data_dir: Path, holder: tuple[subprocess.Popen[str], Path]
) -> None:
    process, held = holder
    temp_files = TempFiles(data_dir / "tmp")
    assert temp_files.sweep(GRACE, spare=set()) == 0
    assert held.exists()
    process.kill()  # as SIGKILL: nothing of it runs to tidy up
    process.wait()
    assert temp_files.sweep(GRACE, spare=set()) == 1
    assert not held.exists()


async def _gone(paths: list[Path]) -> bool:
    return not any(path.exists() for path in paths)
