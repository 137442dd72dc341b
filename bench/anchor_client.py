"""The anchors' clients: a raw asyncio HTTP/1.1 keep-alive client (cheaper than httpx, since it
shares the CPUs with the servers it measures), the job loops built on it, wrk for polls and
curl for 1 GiB downloads."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
BOUNDARY = "anchorsboundary7MA4YWxkTrZu0gW"
CLIENTS = 8
POLL_CONNECTIONS = 16
FINAL = {"succeeded", "failed", "cancelled", "expired"}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class Conn:
    """One keep-alive connection; `call` sends one request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection(HOST, port))

    async def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in headers:
            return Reply(
                status, headers, await self.reader.readexactly(int(headers["content-length"]))
            )
        if headers.get("transfer-encoding") != "chunked":
            return Reply(status, headers, b"")  # a 304, or a body-less 204
        chunks = []
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)
        await self.reader.readuntil(b"\r\n")
        return Reply(status, headers, b"".join(chunks))

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class JobKind:
    """What one submitted job asks for: a processor, its params and the file's bytes."""

    processor: str
    params: str | None = None
    size: int = 1024
    content: bytes | None = None  # None: `size` fresh random bytes per submit

    def payload(self) -> bytes:
        return self.content if self.content is not None else os.urandom(self.size)


CHECKSUM = JobKind("checksum")
GZIP = JobKind("compress", '{"format": "gzip"}')  # filejob's default level, 6


def heavy_gzip(size: int = 1024 * 1024) -> JobKind:
    """A CPU-heavy job: gzip level 9 of DNA-like text (four letters: long match chains), about
    0.6 CPU-s per MiB here, in every system (filejob, the recipes) alike."""
    content = bytes(random.Random(13).choices(b"ACGT", k=size))
    return JobKind("compress", '{"format": "gzip", "level": 9}', size, content)


def multipart(kind: JobKind) -> bytes:
    fields = [("processor", kind.processor)] + ([("params", kind.params)] if kind.params else [])
    head = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="in.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + kind.payload() + f"\r\n--{BOUNDARY}--\r\n".encode()


async def submit(conn: Conn, kind: JobKind) -> str:
    reply = await conn.call(
        "POST", "/v1/jobs", multipart(kind), f"multipart/form-data; boundary={BOUNDARY}"
    )
    if reply.status != 202:
        raise RuntimeError(f"submit: {reply.status} {reply.body[:300]!r}")
    return str(json.loads(reply.body)["id"])


async def job_state(conn: Conn, job_id: str) -> str:
    reply = await conn.call("GET", f"/v1/jobs/{job_id}")
    if reply.status != 200:
        raise RuntimeError(f"poll {job_id}: {reply.status} {reply.body[:300]!r}")
    state = str(json.loads(reply.body)["status"])
    if state in FINAL and state != "succeeded":
        raise RuntimeError(f"job {job_id} ended {state}: {reply.body[:300]!r}")
    return state


async def await_all(conn: Conn, ids: list[str]) -> None:
    """Poll `ids` (a sweep every 20 ms) until all have succeeded."""
    pending = ids
    while pending:
        pending = [job_id for job_id in pending if await job_state(conn, job_id) not in FINAL]
        if pending:
            await asyncio.sleep(0.02)


async def jobs(port: int, n: int, kind: JobKind, wait: bool) -> tuple[float, list[str]]:
    """8 clients submit n jobs (then, with `wait`, poll them until final): (seconds, ids)."""
    t0 = time.monotonic()

    async def client(k: int) -> tuple[float, list[str]]:
        conn = await Conn.open(port)
        try:
            ids = [await submit(conn, kind) for _ in range(k, n, CLIENTS)]
            submitted = time.monotonic()
            if wait:
                await await_all(conn, ids)
            return (time.monotonic() if wait else submitted), ids
        finally:
            conn.close()

    done = await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return max(end for end, _ in done) - t0, [i for _, ids in done for i in ids]


async def finish(port: int, ids: list[str]) -> None:
    conn = await Conn.open(port)
    try:
        await await_all(conn, ids)
    finally:
        conn.close()


async def downloads(port: int, ids: list[str], n: int) -> float:
    """8 clients fetch n results of the (checksum) jobs `ids`, round robin: seconds."""
    t0 = time.monotonic()

    async def client(k: int) -> None:
        conn = await Conn.open(port)
        try:
            for i in range(k, n, CLIENTS):
                reply = await conn.call("GET", f"/v1/jobs/{ids[i % len(ids)]}/result")
                if reply.status != 200 or b"sha256" not in reply.body:
                    raise RuntimeError(f"download: {reply.status} {reply.body[:300]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(client(k) for k in range(CLIENTS)))
    return time.monotonic() - t0


async def etag(port: int, path: str) -> str:
    conn = await Conn.open(port)
    try:
        reply = await conn.call("GET", path)
    finally:
        conn.close()
    if reply.status != 200 or "etag" not in reply.headers:
        raise RuntimeError(f"GET {path}: {reply.status}, no ETag")
    return reply.headers["etag"]


# -- polls under load ------------------------------------------------------------------------


@dataclass(frozen=True)
class PollRun:
    count: int
    rps: float
    p99_ms: float


async def _asyncio_polls(port: int, path: str, seconds: float, headers: dict[str, str]) -> PollRun:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []

    async def client() -> None:
        conn = await Conn.open(port)
        try:
            while time.monotonic() < deadline:
                t = time.perf_counter()
                reply = await conn.call("GET", path, headers=headers)
                latencies.append(time.perf_counter() - t)
                if reply.status not in (200, 304):
                    raise RuntimeError(f"poll: {reply.status}")
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(POLL_CONNECTIONS)))
    p99 = sorted(latencies)[int(len(latencies) * 0.99)] * 1000
    return PollRun(len(latencies), len(latencies) / seconds, p99)


async def _wrk(port: int, path: str, seconds: float, headers: dict[str, str]) -> PollRun:
    argv = ["wrk", "-t2", f"-c{POLL_CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *argv, f"http://{HOST}:{port}{path}", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    text = out.decode()
    # wrk counts only statuses above 399 as errors: a 304 is fine, and is what it should see.
    if proc.returncode or "Non-2xx" in text or "Socket errors" in text:
        raise RuntimeError(f"wrk: {proc.returncode} {text} {err.decode()}")
    count = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return PollRun(count, rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit])


POLLER = "wrk" if shutil.which("wrk") else "asyncio client"


async def poll_load(
    port: int, path: str, seconds: float, headers: dict[str, str] | None = None
) -> PollRun:
    """`seconds` of polling `path` with 16 connections: wrk (2 threads) if installed, else
    16 asyncio connections, closed loop."""
    run = _wrk if POLLER == "wrk" else _asyncio_polls
    return await run(port, path, seconds, headers or {})


async def polls_beside_jobs(
    port: int, path: str, seconds: float, kind: JobKind, in_flight: int = 2
) -> tuple[PollRun, int]:
    """Poll `path` while `in_flight` jobs of `kind` run all along (one client per job slot
    submits the next as soon as its job has finished): (the polls, jobs finished)."""
    polling = asyncio.ensure_future(poll_load(port, path, seconds))
    finished = 0

    async def slot() -> None:
        nonlocal finished
        conn = await Conn.open(port)
        try:
            while not polling.done():
                await await_all(conn, [await submit(conn, kind)])
                finished += 1
        finally:
            conn.close()

    slots = asyncio.gather(*(slot() for _ in range(in_flight)))
    try:
        run = await polling
    finally:
        await slots  # the last jobs finish before the next figure starts
    return run, finished


# -- big downloads ---------------------------------------------------------------------------


def curl_download(url: str) -> tuple[float, int]:
    """Fetch `url` into /dev/null with curl: (seconds, bytes), by curl's own clock."""
    argv = ["curl", "-sS", "--noproxy", "*", "--fail", "-o", "/dev/null"]
    argv += ["-w", "%{time_total} %{size_download}", url]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"curl {url}: {done.returncode} {done.stderr}")
    seconds, size = done.stdout.split()
    return float(seconds), int(size)
