"""A py-spy profile of the server during one upload, summed up as text.

py-spy (a sampling profiler that reads another process's stacks; not a project dependency:
found on PATH, or given with `--py-spy`) records the server non-blocking while `work` runs,
in its own process group, stopped with SIGINT (which makes it write its samples). The
summary splits the samples by thread (the event loop, the worker threads that write and
hash) and lists where each spends them: the frames at the top of the stacks (self time),
aggregated by function, and filejob's own functions with their inclusive share.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

RATE = 200  # samples a second
TOP = 10


def find_py_spy(given: str | None) -> str | None:
    return given if given and Path(given).exists() else shutil.which("py-spy")


def record(py_spy: str, pid: int, out: Path, work: Callable[[], None]) -> None:
    """Sample `pid` into `out` (py-spy's raw, collapsed-stack format) while `work()` runs."""
    argv = [py_spy, "record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking"]
    argv += ["--format", "raw", "--output", str(out)]
    with (out.parent / "py-spy.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_attached(out.parent / "py-spy.log", proc)
        work()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if not out.exists():
        raise RuntimeError(f"py-spy wrote no profile: {(out.parent / 'py-spy.log').read_text()}")


def _wait_attached(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"py-spy exited: {log.read_text()[-1000:]}")
        if "Sampling process" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)


def _frames(stack: str) -> list[tuple[str, str]]:
    """(function, file name) of each frame of one collapsed stack, outermost first."""
    frames = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        path = where.rstrip(")").rsplit(":", 1)[0]
        frames.append((name, _short(path)))
    return frames


def _short(path: str) -> str:
    """`filejob/resumable/receive.py` for filejob's files, the base name for the others."""
    # py-spy names a file relative to its sys.path entry where it can: `filejob/api/...`.
    if path.startswith("filejob/") or "/filejob/" in path:
        return "filejob/" + ("/" + path).rsplit("/filejob/", 1)[1]
    return path.rsplit("/", 1)[-1]


def _thread(frames: list[tuple[str, str]]) -> str:
    if ("_connection_worker_thread", "core.py") in frames:
        return "aiosqlite's thread"
    if any(file == "threading.py" for _, file in frames):
        return "worker threads (anyio: writes, hashes, fsync)"
    return "event loop"


def summarize(raw: Path, seconds: float) -> str:
    """The samples of `raw`, taken over `seconds`, by thread and by frame."""
    stacks: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    total = sum(stacks.values())
    if not total:
        return "py-spy took no samples"
    by_thread: Counter[str] = Counter()
    leaves: dict[str, Counter[str]] = {}
    own: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = _frames(stack)
        thread = _thread(frames)
        by_thread[thread] += n
        name, file = frames[-1]
        leaves.setdefault(thread, Counter())[f"{name} ({file})"] += n
        mine = {f for f in frames if f[1].startswith("filejob/") and f[1] != "filejob/cli.py"}
        for name, file in mine:  # (cli.py: `serve`, under everything the loop runs)
            own[f"{name} ({file})"] += n
    lines = [f"{total} samples at {RATE}/s over {seconds:.1f} s (on CPU, all threads)"]
    for thread, n in by_thread.most_common():
        busy = n / (RATE * seconds)  # the share of the time that thread was on a CPU
        lines.append(f"{thread}: {n / total:.0%} of samples, busy {busy:.0%}; top frames (self):")
        lines += [f"  {k / total:6.1%}  {where}" for where, k in leaves[thread].most_common(TOP)]
    lines.append("filejob functions, inclusive:")
    lines += [f"  {k / total:6.1%}  {where}" for where, k in own.most_common(TOP)]
    return "\n".join(lines)
