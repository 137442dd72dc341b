"""Uploads: filejob's raw body, multipart form and tus against a bare stream-to-disk endpoint.

Run: `.venv/bin/python bench/uploads.py [--size-mib 1024] [--patch-mib 64] [--rounds 3]
[--quick] [--profile/--no-profile] [--py-spy PATH]`. Prints one markdown report and writes it
to `bench/out/uploads.md`. Takes about 3 minutes for 1 GiB, with ~3 GiB free under the temp
dir.

Servers, each in a process group of its own on a free 127.0.0.1 port, stopped by that group,
their files under one `tempfile.mkdtemp()` that is removed at the end:
- filejob: `filejob serve`, the embedded profile (SQLite and local storage in a fresh data
  dir, jobs run in the server), FILEJOB_FSYNC=true as by default;
- bare: bench/bare_app.py, Starlette on uvicorn served as `filejob serve` serves filejob,
  whose `POST /upload?fsync=1` writes `request.stream()` to a file and fsyncs it: the floor.

The file is `--size-mib` of random bytes, made once and read back so that it sits in the page
cache. The client is httpx, in this process, streaming the file in 1 MiB reads
(bench/upload_transfers.py): the bare raw body, filejob's raw body (`POST
/v1/jobs?processor=checksum`, until the 202), its multipart form (until the 202) and tus
(creation, then PATCHes of `--patch-mib` on one keep-alive connection, until the last 204).
The client's ceiling is the bare app's `POST /upload` without fsync, measured each round.
Each round runs every kind once, in an order rotated by round, after one unmeasured round;
`sync` runs before each upload (no upload pays for another's writeback) and filejob's
`checksum` job is awaited and deleted after it, outside the timing. The table gives medians
with [min-max], ratios of medians against the bare floor, the server's CPU (its process tree,
user + system) and the client's per GiB, the share of the time the client spent waiting after
requests' last bytes (fsync, commit, admission: the server's own time, its client idle) and
filejob's peak RSS (VmRSS every 20 ms).

Then the resume figure (bench/upload_relay.py): tuspy through a counting relay that cuts the
connection once half the file's size has crossed it, and the bytes the whole transfer put on
the wire. Then, with py-spy (bench/upload_profile.py), a profile of the server during one more
tus upload.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import httpx
import upload_profile as profile
import upload_transfers as send
from anchor_systems import System, spawn, stop_group
from run import BENCH, OUT, RssSampler, filejob_command, filejob_env, free_port, make_input
from upload_relay import Resume, describe, resume_through_relay

MiB = 1024 * 1024
GiB = 1024 * MiB
READY_TIMEOUT = 30.0
CEILING, BARE, RAW, MULTIPART, TUS = "ceiling", "bare", "raw", "multipart", "tus"
LABELS = {
    CEILING: "bare `POST /upload`, no fsync (the client's ceiling)",
    BARE: "**bare `POST /upload?fsync=1`** (the floor)",
    RAW: "filejob raw body `POST /v1/jobs?processor=checksum`",
    MULTIPART: "filejob multipart `POST /v1/jobs`",
    TUS: "filejob tus: creation + PATCHes",
}
GOALS = {RAW: 0.9, TUS: 0.8}


@dataclass
class Plan:
    size: int
    patch: int
    rounds: int
    profile: bool
    py_spy: str | None
    load_start: float = field(default_factory=lambda: os.getloadavg()[0])
    started: float = field(default_factory=time.monotonic)
    notes: list[str] = field(default_factory=list)


@dataclass
class Sample:
    mibps: float
    server_cpu: float  # s per GiB
    client_cpu: float  # s per GiB
    waited: float  # share of the time from requests' last bytes to their answers
    peak_rss: int = 0  # bytes; filejob only


@dataclass
class Run:
    """What one bench run found."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)
    idle_rss: int = 0
    resume: Resume | None = None
    profile: str = ""


def start_grouped(
    name: str, argv: list[str], env: dict[str, str], port: int, tmp: Path, ready: str
) -> System:
    """`argv` in a process group of its own (stopped by that group), once `ready` answers 200."""
    proc = spawn(name, argv, env, tmp)
    try:
        _wait_ready(name, proc, f"http://{send.HOST}:{port}{ready}", tmp)
    except BaseException:
        stop_group(proc)
        raise
    return System(name, port, [proc.pid], lambda: stop_group(proc), frozenset())


def _wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, tmp: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
        try:
            if httpx.get(url, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT} s")


def start_filejob(tmp: Path) -> System:
    env = filejob_env(tmp / "filejob", fsync=True)
    upgrade = [*filejob_command(), "db", "upgrade"]
    subprocess.run(upgrade, env=env, cwd=tmp, check=True, capture_output=True)
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", send.HOST, "--port", str(port)]
    return start_grouped("filejob", argv, env, port, tmp, "/healthz")


def start_bare(tmp: Path, big: Path) -> System:
    port = free_port()
    argv = [sys.executable, str(BENCH / "bare_app.py"), "--host", send.HOST, "--port", str(port)]
    argv += ["--upload-dir", str(tmp / "bare-uploads"), "--serve-file", str(big)]
    return start_grouped("bare", argv, dict(os.environ), port, tmp, "/ping")


def one_upload(kind: str, side: System, big: Path, plan: Plan, sha256: str) -> Sample:
    transfers: dict[str, Callable[[], send.Sent]] = {
        CEILING: lambda: send.post_bare(side.port, big, fsync=False),
        BARE: lambda: send.post_bare(side.port, big),
        RAW: lambda: send.post_raw(side.port, big),
        MULTIPART: lambda: send.post_multipart(side.port, big),
        TUS: lambda: send.tus_upload(side.port, big, plan.patch),
    }
    os.sync()
    cpu0, client0 = side.cpu(), time.process_time()
    with RssSampler(side.roots[0]) as rss:
        sent = transfers[kind]()
    cpu, client = side.cpu() - cpu0, time.process_time() - client0
    send.settle(side.port, sent, sha256)
    gib = plan.size / GiB
    speed, waited = plan.size / MiB / sent.seconds, sent.waited / sent.seconds
    return Sample(speed, cpu / gib, client / gib, waited, rss.peak)


def measure(plan: Plan, bare: System, filejob: System, big: Path, sha256: str) -> Run:
    kinds = [(CEILING, bare), (BARE, bare), (RAW, filejob), (MULTIPART, filejob), (TUS, filejob)]
    run = Run(samples={kind: [] for kind, _ in kinds})
    for kind, side in kinds:  # warm-up: first requests and first use of memory are slow
        one_upload(kind, side, big, plan, sha256)
    run.idle_rss = _vm_rss(filejob.roots[0])
    for round_no in range(plan.rounds):
        shift = round_no % len(kinds)
        for kind, side in kinds[shift:] + kinds[:shift]:
            sample = one_upload(kind, side, big, plan, sha256)
            run.samples[kind].append(sample)
            print(f"  round {round_no + 1} {kind:9} {sample.mibps:7.1f} MiB/s", file=sys.stderr)
    return run


def _vm_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def resume_figure(plan: Plan, filejob: System, big: Path, sha256: str) -> Resume:
    resume = resume_through_relay(filejob.port, big, plan.patch)
    send.settle(filejob.port, resume.sent, sha256)
    return resume


def profile_tus(plan: Plan, filejob: System, big: Path, sha256: str, tmp: Path) -> str:
    assert plan.py_spy is not None
    sent: list[send.Sent] = []
    out = tmp / "tus-profile.txt"

    def work() -> None:
        sent.append(send.tus_upload(filejob.port, big, plan.patch))

    profile.record(plan.py_spy, filejob.roots[0], out, work)
    send.settle(filejob.port, sent[0], sha256)
    mibps = plan.size / MiB / sent[0].seconds
    summary = profile.summarize(out, sent[0].seconds)
    return f"one tus upload, {mibps:.0f} MiB/s while sampled\n{summary}"


def _median(samples: list[Sample], pick: Callable[[Sample], float]) -> float:
    return statistics.median(pick(s) for s in samples)


def table(run: Run) -> str:
    floor = _median(run.samples[BARE], lambda s: s.mibps)
    rows = [
        "| upload | MiB/s, median [min-max] | vs bare | server CPU s/GiB | client CPU s/GiB "
        "| after the last byte |",
        "|---|---|---|---|---|---|",
    ]
    for kind, label in LABELS.items():
        samples = run.samples[kind]
        speeds = [s.mibps for s in samples]
        median = statistics.median(speeds)
        ratio = f"{median / floor:.2f}x"
        rows.append(
            f"| {label} | {median:.0f} [{min(speeds):.0f}-{max(speeds):.0f}] | "
            f"{f'**{ratio}**' if kind in GOALS else ratio} | "
            f"{_median(samples, lambda s: s.server_cpu):.2f} | "
            f"{_median(samples, lambda s: s.client_cpu):.2f} | "
            f"{_median(samples, lambda s: s.waited):.0%} |"
        )
    return "\n".join(rows)


def goals(run: Run) -> str:
    floor = _median(run.samples[BARE], lambda s: s.mibps)
    lines = []
    for kind, goal in GOALS.items():
        ratio = _median(run.samples[kind], lambda s: s.mibps) / floor
        verdict = "met" if ratio >= goal else "NOT met"
        lines.append(f"- {kind} ≥ {goal}x bare: **{verdict}** ({ratio:.2f}x)")
    if run.resume is not None:
        r = run.resume
        verdict = "met" if r.resent <= 0 else f"NOT met: {r.resent:,} file bytes sent twice"
        lines.append(
            f"- resume after a cut at 50% sends only the missing half: **{verdict}** "
            f"({r.wire:,} bytes on the wire for a {r.size:,}-byte file, {r.wire / r.size:.5f}x)"
        )
    return "\n".join(lines)


def client_line(run: Run) -> str:
    cpu = _median(run.samples[CEILING], lambda s: s.client_cpu)
    return (
        f"The client (httpx, in the bench process) spends {cpu:.2f} CPU-s per GiB against the "
        f"bare app: on a core of its own it could send ~{GiB / MiB / cpu:.0f} MiB/s."
    )


def memory(run: Run) -> str:
    peaks = {k: max(s.peak_rss for s in run.samples[k]) / MiB for k in (RAW, MULTIPART, TUS)}
    shown = ", ".join(f"{kind} {peak:.0f} MiB" for kind, peak in peaks.items())
    return f"filejob server RSS: idle {run.idle_rss / MiB:.0f} MiB; peak during uploads: {shown}"


def resume_text(r: Resume) -> str:
    return (
        f"Resume (tuspy, {r.seconds:.1f} s through the relay): connections {describe(r)}. "
        f"The relay cut after {r.before_cut:,} bytes ({r.before_cut / r.size:.1%} of the file) "
        f"had crossed, {r.file_before_cut:,} of them the file's; in all {r.wire:,} bytes went "
        f"client → server: the file ({r.size:,}), {r.heads:,} bytes of request lines and "
        f"headers, and {max(r.resent, 0):,} file bytes sent twice."
    )


def header(plan: Plan, argv: list[str]) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("httpx", "uvicorn", "starlette", "tuspy")
    )
    wall = time.monotonic() - plan.started
    notes = "".join(f" {note}." for note in plan.notes)
    return (
        f"`.venv/bin/python bench/uploads.py {' '.join(argv)}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {wall:.0f} s wall; {os.cpu_count()} CPUs "
        f"({cpu}); load average {plan.load_start:.2f} at start, {os.getloadavg()[0]:.2f} at "
        f"end. File {plan.size // MiB} MiB of random bytes, PATCHes of {plan.patch // MiB} MiB; "
        f"medians of {plan.rounds} interleaved rounds; FILEJOB_FSYNC=true; {packages}.{notes}"
    )


def report(plan: Plan, run: Run, argv: list[str]) -> str:
    parts = [header(plan, argv), table(run), goals(run), client_line(run), memory(run)]
    if run.resume is not None:
        parts.append(resume_text(run.resume))
    if run.profile:
        parts.append(f"py-spy profile of the server:\n\n```text\n{run.profile}\n```")
    return "\n\n".join(parts) + "\n"


def parse_plan() -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=None, help="file size (default 1024)")
    parser.add_argument("--patch-mib", type=int, default=None, help="tus PATCH size (64)")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds (3)")
    parser.add_argument(
        "--quick", action="store_true", help="32 MiB in 8 MiB PATCHes, one round, no profile"
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile one tus upload with py-spy (default: on where py-spy is, off with --quick)",
    )
    parser.add_argument("--py-spy", default=None, help="the py-spy binary (default: on PATH)")
    args = parser.parse_args()
    size, patch, rounds = (32, 8, 1) if args.quick else (1024, 64, 3)
    py_spy = profile.find_py_spy(args.py_spy)
    plan = Plan(
        size=(args.size_mib or size) * MiB,
        patch=(args.patch_mib or patch) * MiB,
        rounds=args.rounds or rounds,
        profile=(not args.quick) if args.profile is None else args.profile,
        py_spy=py_spy,
    )
    if plan.profile and py_spy is None:
        plan.profile = False
        plan.notes.append("No profile: py-spy is not installed (`--py-spy PATH` names one)")
    return plan


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` stops what was started


def main() -> None:
    plan = parse_plan()
    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="filejob-uploads-"))
    servers: list[System] = []
    try:
        big = tmp / "big.bin"
        make_input(big, plan.size)
        sha256 = hashlib.file_digest(big.open("rb"), "sha256").hexdigest()
        servers.append(start_bare(tmp, big))
        servers.append(start_filejob(tmp))
        bare, filejob = servers
        run = measure(plan, bare, filejob, big, sha256)
        run.resume = resume_figure(plan, filejob, big, sha256)
        if plan.profile:
            run.profile = profile_tus(plan, filejob, big, sha256, tmp)
    finally:
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(plan, run, sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "uploads.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
