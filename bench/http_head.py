"""What the request-head limits cost: requests/s and server CPU per request of `GET /healthz`,
filejob's app on uvicorn's stock httptools protocol vs. on the protocol of
service/filejob/api/http_limits.py.

Run: `.venv/bin/python bench/http_head.py` (about a minute; `--rounds`, `--seconds`).

1. The protocol alone, in this process: CPU time (time.process_time) per request through
`data_received` -> parser -> a minimal ASGI app -> response, on a transport that only counts
writes, `PROTOCOL_REQUESTS` requests of a curl-like head (4 header fields) per round, on uvloop
when installed, sides alternating for `--rounds` * 2 rounds. No sockets, no app work: the
overhead at its largest.

2. End to end. Two servers, one process each, on 127.0.0.1 and free ports, each with its own
data dir: this script in `--serve` mode builds the app as `filejob serve` does (same settings,
uvloop when installed) and differs only in uvicorn's `http=`: "httptools" (stock) or
`protocol_with(HeadLimits.of(settings))` (limited). The load is bench/run.py's client: one
process of `--connections` keep-alive connections over raw sockets, one request in flight per
connection. The sides alternate, order swapped every round, for `--rounds` rounds of
`--seconds` each after a warm-up; the table gives medians and the ratio limited / stock.
Server CPU (user + system from /proc) per request is printed next to requests/s: on a shared
machine it moves less with other load than requests/s does. Servers are stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import (
    ROOT,
    LoadResult,
    filejob_command,
    filejob_env,
    free_port,
    load_average,
    run_load,
    start_server,
    stop_server,
)

PATH = "/healthz"
SIDES = ("stock", "limited")
PROTOCOL_REQUESTS = 20_000
HEAD = (
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
)


# -- 1. the protocol alone -------------------------------------------------------------------


async def _tiny_app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


class _CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        peers = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}
        return peers.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _protocol_round(protocol_class: Any) -> float:
    """CPU µs per request of one connection serving PROTOCOL_REQUESTS requests."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(_tiny_app, http=protocol_class, log_level="warning")
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
    transport = _CountingTransport()
    protocol.connection_made(transport)
    start = time.process_time()
    for _ in range(PROTOCOL_REQUESTS):
        protocol.data_received(HEAD)
        await asyncio.sleep(0)  # the request's task starts
        await asyncio.sleep(0)  # and answers
    elapsed = time.process_time() - start
    assert transport.writes >= PROTOCOL_REQUESTS and not transport.closed
    protocol.connection_lost(None)
    return elapsed / PROTOCOL_REQUESTS * 1e6


def protocol_cost(rounds: int) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from filejob.api.http_limits import HeadLimits, protocol_with
    from filejob.config import Settings

    classes = {"stock": HttpToolsProtocol, "limited": protocol_with(HeadLimits.of(Settings()))}
    samples: dict[str, list[float]] = {side: [] for side in SIDES}

    async def measure() -> None:
        for side in SIDES:  # warm-up
            await _protocol_round(classes[side])
        for round_no in range(rounds):
            for side in SIDES if round_no % 2 == 0 else SIDES[::-1]:
                samples[side].append(await _protocol_round(classes[side]))

    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(measure())
    return {side: statistics.median(samples[side]) for side in SIDES}


# -- 2. end to end ---------------------------------------------------------------------------


def serve(side: str, port: int) -> None:
    """Serve filejob's app on 127.0.0.1:`port` with the stock or the limited protocol."""
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from filejob.api.http_limits import HeadLimits, protocol_with
    from filejob.app import create_app
    from filejob.config import Settings
    from filejob.ops import logs

    settings = Settings(host="127.0.0.1", port=port, log_level="warning")
    logs.configure(settings.log_level, settings.log_format)
    http = "httptools" if side == "stock" else protocol_with(HeadLimits.of(settings))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=port,
        http=http,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    print(f"load average at start: {load_average()}")
    alone = protocol_cost(args.rounds * 2)
    print(
        f"protocol alone, CPU µs per request (median of {args.rounds * 2} rounds): "
        f"stock {alone['stock']:.2f}, limited {alone['limited']:.2f}, "
        f"+{alone['limited'] - alone['stock']:.2f} µs ({alone['limited'] / alone['stock']:.3f}x)"
    )
    results: dict[str, list[LoadResult]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory(prefix="filejob-http-head-") as tmp:
        root = Path(tmp)
        servers = {}
        try:
            for side in SIDES:
                env = filejob_env(root / side, fsync=False)
                env["FILEJOB_LOG_LEVEL"] = "warning"
                command = [*filejob_command(), "db", "upgrade"]
                subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
                port = free_port()
                argv = [sys.executable, __file__, "--serve", side, "--port", str(port)]
                servers[side] = start_server(side, argv, env, port, root, PATH)
            for side in SIDES:  # warm-up round, not counted
                run_load(servers[side], PATH, 1, args.connections, 1.0, 10**9)
            for round_no in range(args.rounds):
                order = SIDES if round_no % 2 == 0 else SIDES[::-1]
                for side in order:
                    result = run_load(servers[side], PATH, 1, args.connections, args.seconds, 10**9)
                    assert result.errors == 0, f"{side}: {result.errors} non-200 answers"
                    results[side].append(result)
                    print(
                        f"round {round_no + 1} {side:8} {result.rps:9.0f} req/s "
                        f"{result.server_cpu_s / result.ok * 1e6:7.1f} µs CPU/request"
                    )
        finally:
            for server in servers.values():
                stop_server(server)
    print(f"load average at end: {load_average()}")
    report(results, args)


def report(results: dict[str, list[LoadResult]], args: argparse.Namespace) -> None:
    rps = {side: statistics.median(r.rps for r in results[side]) for side in SIDES}
    cpu = {
        side: statistics.median(r.server_cpu_s / r.ok * 1e6 for r in results[side])
        for side in SIDES
    }
    print(
        f"\nGET {PATH}, {args.connections} keep-alive connections, "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s (medians)"
    )
    print(f"{'':10}{'req/s':>10}{'µs CPU/req':>12}")
    for side in SIDES:
        print(f"{side:10}{rps[side]:10.0f}{cpu[side]:12.1f}")
    print(
        f"limited / stock: {rps['limited'] / rps['stock']:.3f}x requests/s, "
        f"{cpu['limited'] / cpu['stock']:.3f}x CPU per request"
    )


if __name__ == "__main__":
    main()
