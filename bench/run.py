"""filejob vs. a bare Starlette app: upload, download and polling throughput in one run.

Run: `.venv/bin/python bench/run.py` (or `make bench`). Prints a table and writes the same
figures to `bench/out/results.json`. Takes about 2-4 minutes and needs ~3 GiB of free disk
under the temp dir and ~3 GiB of page cache.

Method
------
Servers. filejob runs as `filejob serve` (uvicorn, one process; "auto" picks httptools and
uvloop), once with FILEJOB_FSYNC=true (the default; the *main* figures) and once with
FILEJOB_FSYNC=false, each on its own data dir. The baseline is `bench/bare_app.py`: a minimal
Starlette app on uvicorn with the same options, writing into a folder on the same filesystem.
All of them listen on 127.0.0.1 on free ports, run as subprocesses and are stopped by PID at
the end (also on errors); every file lives under one `tempfile.mkdtemp()` that is removed.

Input. A 1 GiB file of random bytes (incompressible), read once before measuring so that it is
in the page cache: the client then reads from memory, not from disk.

1. Upload. curl posts the file as multipart (`-F file=@big.bin -F processor=checksum`) to
   `POST /v1/jobs`. The bare `POST /upload` gets two kinds of request: the *same* multipart
   request (`curl -F`; the app writes the whole body, framing included, to disk) and a plain
   streamed body (`curl -T big.bin -X POST`). The target ratio uses the same request, because
   only then do both servers receive identical bytes from an identically loaded client: on
   these 2-vCPU machines `curl -F` itself costs about 10% of throughput against `-T`, a cost
   no server can recover. The `-T` ratios are printed too. `?fsync=1` gives the "bare + fsync"
   baselines, which fsync before answering as filejob does by default. MB/s = file bytes /
   curl's `time_total`, MB = 10^6 bytes. The sides are interleaved for `--repeats` rounds,
   after `--warmup` unmeasured rounds (first requests, and first use of fresh memory in a VM,
   are slow); the table gives the median per side and the ratio of medians. Before each upload
   `sync` flushes earlier dirty pages, so no upload pays for another's writeback; after each,
   the bare file is removed, and the filejob job is awaited (its checksum run would otherwise
   compete for the CPUs) and deleted.
2. Memory. The filejob server's VmRSS is sampled every 20 ms in a thread during each upload
   (max reported), next to its idle VmRSS and VmHWM before and after.
3. Disk writes. `/proc/<pid>/io` `write_bytes` (bytes sent, or to be sent, to the block layer)
   and `wchar` (bytes passed to write()) deltas across each upload, divided by the file size;
   the baseline should be ~1.0. The server's CPU time (user + system, from /proc/<pid>/stat)
   per upload is reported too: with two cores, a CPU-bound server shows up there.
4. Download. The file is submitted to filejob with processor "compress" and params
   {"format": "zstd", "level": 1}; random data does not compress, so the result is ~1 GiB.
   Once the job succeeded, curl fetches the result (`-o /dev/null`), interleaved with the bare
   app's `GET /file` (Starlette `FileResponse` of the input, same size within 0.01 %).
5. Requests/s. Two client processes, each with `--connections` keep-alive HTTP/1.1
   connections (asyncio + uvloop over raw sockets: cheaper per request than http.client),
   issue `GET /v1/jobs/{id}` for up to `--rps-seconds` seconds or `--rps-requests` requests in
   all, whichever comes first; the baseline is the bare `GET /ping`. Requests/s = successful
   responses / the slower process's elapsed time.

Caveats: client and servers share the machine (`nproc` is printed), so on a small machine the
client takes CPU from the server; other load on the machine shows in the load averages, which
are printed at start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
HOST = "127.0.0.1"
MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1_000_000
SAMPLE_INTERVAL = 0.020
READY_TIMEOUT = 30.0
JOB_TIMEOUT = 300.0
COMPRESS_PARAMS = '{"format":"zstd","level":1}'


# -- machine and process facts ---------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    def version(module: str) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(module)
        except PackageNotFoundError:
            return "?"

    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True)
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mem_total_mib": _meminfo()["MemTotal"] // MiB,
        "curl": curl.stdout.split()[1],
        "packages": {
            name: version(name)
            for name in (
                "uvicorn",
                "starlette",
                "fastapi",
                "python-multipart",
                "httptools",
                "uvloop",
            )
        },
    }


def _meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def proc_io(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Samples `pid`'s VmRSS every 20 ms in a thread while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            if self._stop.wait(SAMPLE_INTERVAL):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])


# -- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_server(
    name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path, ready_path: str
) -> Server:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, port, proc, log_path)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            status, _ = request(server, "GET", ready_path)
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT}s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is not None:
        return
    server.proc.terminate()  # SIGTERM to this PID: uvicorn shuts down gracefully
    try:
        server.proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def filejob_env(data_dir: Path, fsync: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FILEJOB_")}
    env.update(
        FILEJOB_DATA_DIR=str(data_dir),
        FILEJOB_MAX_UPLOAD_BYTES=str(2 * GiB),
        FILEJOB_FSYNC="true" if fsync else "false",
    )
    return env


def filejob_command() -> list[str]:
    script = Path(sys.executable).with_name("filejob")
    return [str(script)] if script.exists() else [sys.executable, "-m", "filejob"]


def start_filejob(name: str, data_dir: Path, fsync: bool, log_dir: Path) -> Server:
    env = filejob_env(data_dir, fsync)
    subprocess.run(
        [*filejob_command(), "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True
    )
    port = free_port()
    argv = [*filejob_command(), "serve", "--host", HOST, "--port", str(port)]
    return start_server(name, argv, env, port, log_dir, "/healthz")


def start_bare(upload_dir: Path, serve_file: Path, log_dir: Path) -> Server:
    port = free_port()
    argv = [
        sys.executable,
        str(BENCH / "bare_app.py"),
        "--host",
        HOST,
        "--port",
        str(port),
        "--upload-dir",
        str(upload_dir),
        "--serve-file",
        str(serve_file),
    ]
    return start_server("bare", argv, dict(os.environ), port, log_dir, "/ping")


def request(server: Server, method: str, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        ctype = resp.getheader("content-type", "")
        return resp.status, json.loads(body) if body and "json" in ctype else body
    finally:
        conn.close()


def wait_job(server: Server, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        status, job = request(server, "GET", f"/v1/jobs/{job_id}")
        if status != 200:
            raise RuntimeError(f"GET job {job_id}: {status} {job!r}")
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} not finished after {JOB_TIMEOUT}s")


# -- transfers -------------------------------------------------------------------------------


@dataclass
class Transfer:
    """One curl transfer, with the server's resource use across it."""

    seconds: float
    payload_bytes: int
    http_code: int
    server_cpu_s: float
    peak_rss: int
    wchar: int
    write_bytes: int
    response: str = field(repr=False)

    @property
    def mbps(self) -> float:
        return self.payload_bytes / self.seconds / MB


def curl_transfer(
    server: Server, args: list[str], payload_bytes: int, scratch: Path, *, keep_body: bool = True
) -> Transfer:
    """Run curl with `args`; MB/s is computed from `payload_bytes` (0: the downloaded size).
    The response body is kept for `Transfer.response`, or discarded if not `keep_body`."""
    body = scratch / "curl-response"
    output = str(body) if keep_body else "/dev/null"
    argv = [
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "--fail-with-body",
        "-o",
        output,
        "-w",
        "%{http_code} %{time_total} %{size_download}",
        *args,
    ]
    pid = server.pid
    io0, cpu0 = proc_io(pid), proc_cpu_seconds(pid)
    with RssSampler(pid) as rss:
        done = subprocess.run(argv, capture_output=True, text=True)
    io1, cpu1 = proc_io(pid), proc_cpu_seconds(pid)
    response = body.read_text(errors="replace") if body.exists() else ""
    body.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"curl {args[-1]} failed ({done.returncode}): {done.stderr} {response}")
    code, seconds, downloaded = done.stdout.split()
    return Transfer(
        seconds=float(seconds),
        payload_bytes=payload_bytes or int(downloaded),
        http_code=int(code),
        server_cpu_s=cpu1 - cpu0,
        peak_rss=rss.peak,
        wchar=io1["wchar"] - io0["wchar"],
        write_bytes=io1["write_bytes"] - io0["write_bytes"],
        response=response,
    )


def upload_bare(
    bare: Server, big: Path, fsync: bool, scratch: Path, *, multipart: bool = False
) -> Transfer:
    """A raw-body upload (`curl -T`), or with `multipart` the very request filejob gets
    (`curl -F`), whose whole body, framing included, the bare app writes to disk."""
    path = "/upload?fsync=1" if fsync else "/upload"
    if multipart:
        body_args = ["-F", f"file=@{big}", "-F", "processor=checksum"]
    else:
        body_args = ["-T", str(big), "-X", "POST", "-H", "Content-Type: application/octet-stream"]
    t = curl_transfer(bare, [*body_args, bare.url(path)], big.stat().st_size, scratch)
    info = json.loads(t.response)
    size = big.stat().st_size
    if info["size"] < size or (not multipart and info["size"] != size):
        raise RuntimeError(f"bare upload stored {info['size']} bytes")
    Path(info["path"]).unlink()
    return t


def submit(
    server: Server, big: Path, processor: str, scratch: Path, params: str | None = None
) -> tuple[Transfer, str]:
    args = ["-F", f"file=@{big}", "-F", f"processor={processor}"]
    if params is not None:
        args += ["-F", f"params={params}"]
    t = curl_transfer(server, [*args, server.url("/v1/jobs")], big.stat().st_size, scratch)
    if t.http_code != 202:
        raise RuntimeError(f"submit: {t.http_code} {t.response}")
    return t, str(json.loads(t.response)["id"])


def upload_filejob(server: Server, big: Path, scratch: Path) -> Transfer:
    t, job_id = submit(server, big, "checksum", scratch)
    job = wait_job(server, job_id)
    if job["status"] != "succeeded":
        raise RuntimeError(f"checksum job {job_id} ended {job['status']}: {job.get('error')}")
    status, body = request(server, "DELETE", f"/v1/jobs/{job_id}")
    if status != 204:
        raise RuntimeError(f"DELETE job {job_id}: {status} {body!r}")
    return t


def download(server: Server, path: str, scratch: Path) -> Transfer:
    t = curl_transfer(server, [server.url(path)], 0, scratch, keep_body=False)
    if t.http_code != 200:
        raise RuntimeError(f"GET {path}: {t.http_code}")
    return t


# -- requests/s ------------------------------------------------------------------------------


async def _load(
    port: int, path: str, max_requests: int, deadline: float, connections: int
) -> tuple[int, int]:
    req = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    sent = ok = errors = 0

    async def one_connection() -> None:
        nonlocal sent, ok, errors
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while sent < max_requests and time.monotonic() < deadline:
                sent += 1
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if head[9:12] == b"200":
                    ok += 1
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return ok, errors


def load_worker(
    port: int, path: str, max_requests: int, seconds: float, connections: int, start_at: float
) -> tuple[int, int, float]:
    """One client process: (ok, errors, elapsed seconds). Starts at wall time `start_at`."""
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.monotonic()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        ok, errors = runner.run(_load(port, path, max_requests, t0 + seconds, connections))
    return ok, errors, time.monotonic() - t0


@dataclass
class LoadResult:
    path: str
    ok: int
    errors: int
    seconds: float
    peak_rss: int
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds


def run_load(
    server: Server, path: str, processes: int, connections: int, seconds: float, max_requests: int
) -> LoadResult:
    for _ in range(50):  # warm-up: first-request costs (imports, caches) stay out of the figure
        request(server, "GET", path)
    per_process = max_requests // processes
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        # Let both interpreters start before the clock does.
        start_at = time.time() + 1.5
        cpu0 = proc_cpu_seconds(server.pid)
        with RssSampler(server.pid) as rss:
            futures = [
                pool.submit(
                    load_worker, server.port, path, per_process, seconds, connections, start_at
                )
                for _ in range(processes)
            ]
            results = [f.result() for f in futures]
        cpu1 = proc_cpu_seconds(server.pid)
    return LoadResult(
        path=path,
        ok=sum(r[0] for r in results),
        errors=sum(r[1] for r in results),
        seconds=max(r[2] for r in results),
        peak_rss=rss.peak,
        server_cpu_s=cpu1 - cpu0,
    )


# -- the run ---------------------------------------------------------------------------------


def make_input(path: Path, size: int) -> None:
    chunk = 16 * MiB
    with path.open("wb") as f:
        for offset in range(0, size, chunk):
            f.write(os.urandom(min(chunk, size - offset)))
    os.sync()
    with path.open("rb") as f:  # pre-warm: make sure every page is cached
        while f.read(chunk):
            pass


def summarize(transfers: list[Transfer], size: int) -> dict[str, Any]:
    return {
        "mbps_median": statistics.median(t.mbps for t in transfers),
        "runs_mbps": [round(t.mbps, 1) for t in transfers],
        "runs_seconds": [round(t.seconds, 3) for t in transfers],
        "server_cpu_s_median": statistics.median(t.server_cpu_s for t in transfers),
        "write_bytes_per_byte": statistics.median(t.write_bytes / size for t in transfers),
        "wchar_per_byte": statistics.median(t.wchar / size for t in transfers),
        "peak_rss_max": max(t.peak_rss for t in transfers),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = args.size_mib * MiB
    results: dict[str, Any] = {
        "machine": machine_facts(),
        "load_avg_start": load_average(),
        "file_bytes": size,
        "repeats": args.repeats,
        "warmup": args.warmup,
    }
    tmp = Path(tempfile.mkdtemp(prefix="filejob-bench-"))
    servers: list[Server] = []
    try:
        scratch = tmp / "scratch"
        scratch.mkdir()
        big = tmp / "big.bin"
        make_input(big, size)
        bare = start_bare(tmp / "bare-uploads", big, tmp)
        servers.append(bare)
        fj = start_filejob("filejob-fsync", tmp / "data-fsync", True, tmp)
        servers.append(fj)
        fj_nofsync = start_filejob("filejob-nofsync", tmp / "data-nofsync", False, tmp)
        servers.append(fj_nofsync)
        results["filejob_idle"] = proc_status(fj.pid)

        # 1-3: uploads, interleaved.
        sides: dict[str, list[Transfer]] = {
            "bare": [],
            "bare_multipart": [],
            "filejob_fsync": [],
            "bare_fsync": [],
            "bare_multipart_fsync": [],
            "filejob_nofsync": [],
        }

        def upload_once(side: str) -> Transfer:
            os.sync()
            if side.startswith("bare"):
                fsync, multipart = side.endswith("_fsync"), "multipart" in side
                return upload_bare(bare, big, fsync, scratch, multipart=multipart)
            return upload_filejob(fj if side == "filejob_fsync" else fj_nofsync, big, scratch)

        warmups: dict[str, list[float]] = {side: [] for side in sides}
        for round_no in range(-args.warmup, args.repeats):
            for side in sides:
                t = upload_once(side)
                label = f"round {round_no + 1}" if round_no >= 0 else "warm-up"
                if round_no >= 0:
                    sides[side].append(t)
                else:
                    warmups[side].append(t.mbps)
                print(
                    f"  upload {label:8} {side:16} {t.mbps:8.1f} MB/s ({t.seconds:.2f} s)",
                    file=sys.stderr,
                )
        uploads = {side: summarize(ts, size) for side, ts in sides.items()}
        results["upload"] = uploads
        results["upload_warmup_mbps"] = warmups
        results["filejob_after_uploads"] = proc_status(fj.pid)
        results["ratios"] = {
            "upload_filejob_fsync_vs_bare": uploads["filejob_fsync"]["mbps_median"]
            / uploads["bare"]["mbps_median"],
            "upload_filejob_nofsync_vs_bare": uploads["filejob_nofsync"]["mbps_median"]
            / uploads["bare"]["mbps_median"],
            "upload_filejob_fsync_vs_bare_fsync": uploads["filejob_fsync"]["mbps_median"]
            / uploads["bare_fsync"]["mbps_median"],
            "upload_filejob_fsync_vs_bare_same_request": uploads["filejob_fsync"]["mbps_median"]
            / uploads["bare_multipart"]["mbps_median"],
            "upload_filejob_nofsync_vs_bare_same_request": uploads["filejob_nofsync"]["mbps_median"]
            / uploads["bare_multipart"]["mbps_median"],
            "upload_filejob_fsync_vs_bare_same_request_fsync": uploads["filejob_fsync"][
                "mbps_median"
            ]
            / uploads["bare_multipart_fsync"]["mbps_median"],
        }

        # 4: download of a ~1 GiB result.
        os.sync()
        _, job_id = submit(fj, big, "compress", scratch, COMPRESS_PARAMS)
        job = wait_job(fj, job_id)
        if job["status"] != "succeeded":
            raise RuntimeError(f"compress job ended {job['status']}: {job.get('error')}")
        os.sync()
        downloads: dict[str, list[Transfer]] = {"bare": [], "filejob": []}
        for round_no in range(-args.warmup, args.repeats):
            for side in downloads:
                if side == "bare":
                    t = download(bare, "/file", scratch)
                else:
                    t = download(fj, f"/v1/jobs/{job_id}/result", scratch)
                label = f"round {round_no + 1}" if round_no >= 0 else "warm-up"
                if round_no >= 0:
                    downloads[side].append(t)
                print(f"  download {label:8} {side:14} {t.mbps:8.1f} MB/s", file=sys.stderr)
        results["download"] = {
            side: {**summarize(ts, ts[0].payload_bytes), "bytes": ts[0].payload_bytes}
            for side, ts in downloads.items()
        }
        results["ratios"]["download_filejob_vs_bare"] = (
            results["download"]["filejob"]["mbps_median"]
            / results["download"]["bare"]["mbps_median"]
        )

        # 5: requests/s.
        loads = {
            "bare": run_load(
                bare, "/ping", args.processes, args.connections, args.rps_seconds, args.rps_requests
            ),
            "filejob": run_load(
                fj,
                f"/v1/jobs/{job_id}",
                args.processes,
                args.connections,
                args.rps_seconds,
                args.rps_requests,
            ),
        }
        results["rps"] = {side: {**asdict(r), "rps": r.rps} for side, r in loads.items()}
        results["ratios"]["rps_filejob_vs_bare"] = loads["filejob"].rps / loads["bare"].rps
        results["rps_setup"] = {
            "processes": args.processes,
            "connections": args.connections,
            "seconds": args.rps_seconds,
            "max_requests": args.rps_requests,
        }
        results["load_avg_end"] = load_average()
        return results
    finally:
        for server in reversed(servers):
            stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)


# -- report ----------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB"


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    pk = m["packages"]
    la0 = " ".join(f"{x:.2f}" for x in r["load_avg_start"])
    la1 = " ".join(f"{x:.2f}" for x in r["load_avg_end"])
    lines = [
        "filejob bench",
        f"machine: nproc={m['nproc']}  {m['cpu']}  RAM {m['mem_total_mib']} MiB  "
        f"Linux {m['kernel']}",
        f"python {m['python']}  uvicorn {pk['uvicorn']}  starlette {pk['starlette']}  "
        f"fastapi {pk['fastapi']}  python-multipart {pk['python-multipart']}  "
        f"httptools {pk['httptools']}  uvloop {pk['uvloop']}  curl {m['curl']}",
        f"load average: start {la0} / end {la1}",
        f"file: {_mib(r['file_bytes'])} random; {r['repeats']} interleaved runs per side after "
        f"{r['warmup']} warm-up, medians; MB/s = 10^6 bytes of file per second (curl time_total)",
        "main figures: filejob with FILEJOB_FSYNC=true (the default)",
        "",
    ]
    head = (
        f"{'UPLOAD (curl POST)':<40}{'MB/s':>8}  {'runs':<22}{'srv CPU s':>10}"
        f"{'write_bytes/B':>15}{'wchar/B':>9}"
    )
    lines += [head, "-" * len(head)]
    labels = {
        "bare": "bare POST /upload  (curl -T)",
        "bare_multipart": "bare POST /upload  (curl -F, same req)",
        "bare_fsync": "bare ... -T, fsync",
        "bare_multipart_fsync": "bare ... -F, fsync",
        "filejob_fsync": "filejob POST /v1/jobs  fsync=true",
        "filejob_nofsync": "filejob POST /v1/jobs  fsync=false",
    }
    order = ("bare", "bare_multipart", "filejob_fsync", "bare_fsync", "bare_multipart_fsync")
    for side in (*order, "filejob_nofsync"):
        u = r["upload"][side]
        runs = " ".join(f"{x:.0f}" for x in u["runs_mbps"])
        lines.append(
            f"{labels[side]:<40}{u['mbps_median']:>8.1f}  {runs:<22}"
            f"{u['server_cpu_s_median']:>10.2f}{u['write_bytes_per_byte']:>15.3f}"
            f"{u['wchar_per_byte']:>9.3f}"
        )
    ratios = r["ratios"]
    same = ratios["upload_filejob_fsync_vs_bare_same_request"]
    verdict = "OK" if same >= 0.8 else "BELOW TARGET"
    lines += [
        f"ratio filejob(fsync=true)  / bare -F      {same:.2f}   (target >= 0.80: {verdict})",
        f"ratio filejob(fsync=false) / bare -F      "
        f"{ratios['upload_filejob_nofsync_vs_bare_same_request']:.2f}",
        f"ratio filejob(fsync=true)  / bare -F+fsync "
        f"{ratios['upload_filejob_fsync_vs_bare_same_request_fsync']:.2f}",
        f"ratio filejob(fsync=true)  / bare -T      {ratios['upload_filejob_fsync_vs_bare']:.2f}"
        "   (client differs: curl -F costs the client more than -T)",
        f"ratio filejob(fsync=false) / bare -T      {ratios['upload_filejob_nofsync_vs_bare']:.2f}",
        f"ratio filejob(fsync=true)  / bare -T+fsync "
        f"{ratios['upload_filejob_fsync_vs_bare_fsync']:.2f}",
        "",
        "FILEJOB SERVER MEMORY (fsync=true server)",
        f"idle VmRSS {_mib(r['filejob_idle']['VmRSS'])}; peak VmRSS sampled every 20 ms during "
        f"uploads {_mib(r['upload']['filejob_fsync']['peak_rss_max'])} "
        f"(fsync=false server: {_mib(r['upload']['filejob_nofsync']['peak_rss_max'])}); "
        f"VmHWM {_mib(r['filejob_idle']['VmHWM'])} before -> "
        f"{_mib(r['filejob_after_uploads']['VmHWM'])} after uploads; "
        f"during downloads {_mib(r['download']['filejob']['peak_rss_max'])}",
        "",
    ]
    head = f"{'DOWNLOAD (curl -o /dev/null)':<40}{'MB/s':>8}  {'runs':<22}{'srv CPU s':>10}"
    lines += [head, "-" * len(head)]
    for side, label in (
        ("bare", "bare GET /file (FileResponse)"),
        ("filejob", "filejob GET /v1/jobs/{id}/result"),
    ):
        d = r["download"][side]
        runs = " ".join(f"{x:.0f}" for x in d["runs_mbps"])
        lines.append(
            f"{label:<40}{d['mbps_median']:>8.1f}  {runs:<22}"
            f"{d['server_cpu_s_median']:>10.2f}   ({d['bytes']} bytes)"
        )
    lines += [
        f"ratio filejob / bare                      {ratios['download_filejob_vs_bare']:.2f}",
        "",
    ]
    s = r["rps_setup"]
    head = (
        f"{'REQUESTS/S':<40}{'req/s':>8}  {'requests':>9}{'errors':>8}{'seconds':>9}"
        f"{'srv CPU s':>10}"
    )
    lines += [
        f"({s['processes']} client processes x {s['connections']} keep-alive connections, "
        f"{s['seconds']:.0f} s or {s['max_requests']} requests)",
        head,
        "-" * len(head),
    ]
    for side, label in (("bare", "bare GET /ping"), ("filejob", "filejob GET /v1/jobs/{id}")):
        q = r["rps"][side]
        lines.append(
            f"{label:<40}{q['rps']:>8.0f}  {q['ok']:>9}{q['errors']:>8}"
            f"{q['seconds']:>9.2f}{q['server_cpu_s']:>10.2f}"
        )
    lines.append(f"ratio filejob / bare                      {ratios['rps_filejob_vs_bare']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="filejob vs. a bare Starlette app.")
    parser.add_argument("--size-mib", type=int, default=1024, help="test file size")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs per side")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs per side first")
    parser.add_argument("--processes", type=int, default=2, help="requests/s client processes")
    parser.add_argument("--connections", type=int, default=4, help="connections per process")
    parser.add_argument("--rps-seconds", type=float, default=5.0)
    parser.add_argument("--rps-requests", type=int, default=20000)
    args = parser.parse_args()
    started = time.monotonic()
    results = run(args)
    results["bench_seconds"] = time.monotonic() - started
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"\n(bench took {results['bench_seconds']:.0f} s; JSON: {OUT / 'results.json'})")


if __name__ == "__main__":
    main()
