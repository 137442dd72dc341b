"""What every client command shares: its options, which server it talks to, and how a failure
becomes one line on stderr and an exit code.

Exit codes: 0 done; 1 refused or failed (the server's problem, an unreachable server, a failed
job, a file that would be overwritten, nothing to cancel); 2 a usage error; 130 interrupted
(Ctrl+C).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:  # imported when a client command runs, never by `serve` or `worker`
    import httpx

    from filejob.client.api import FilejobClient

T = TypeVar("T")
P = ParamSpec("P")

INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl+C
USAGE = 2

SERVER = typer.Option(
    None,
    "--server",
    envvar="FILEJOB_SERVER",
    show_default=False,
    help="API URL (default: http://FILEJOB_HOST:FILEJOB_PORT, else http://127.0.0.1:8000).",
)
API_KEY = typer.Option(None, "--api-key", envvar="FILEJOB_API_KEY", help="API key, if required.")
JSON_OUT = typer.Option(False, "--json", help="Machine-readable output.")
# Ids made by older servers may start with "-": give those after "--" (status -- -abc...).
JOB_ID = typer.Argument(..., metavar="ID", help="A job id.")
JOB_IDS = typer.Argument(..., metavar="ID", help="One or more job ids.")


def default_server(env: Mapping[str, str] = os.environ) -> str:
    """Where `filejob serve` listens by the same environment: FILEJOB_HOST and FILEJOB_PORT,
    a wildcard address (0.0.0.0, ::) reached on the loopback."""
    host = env.get("FILEJOB_HOST", "").strip() or "127.0.0.1"
    port = env.get("FILEJOB_PORT", "").strip() or "8000"
    if host in ("0.0.0.0", "::", "[::]", "*"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{port}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say `message` on stderr; the exit to raise."""
    typer.echo(f"filejob: {message}", err=True)
    return typer.Exit(code)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def connect(server: str | None, api_key: str | None) -> FilejobClient:
    from filejob.client.api import FilejobClient

    return FilejobClient(server or default_server(), api_key)


def network_problem(exc: httpx.HTTPError, server: str) -> str:
    """A transport failure in a few words, naming the server."""
    import httpx

    reason = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach {server}: {reason}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{server} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return f"lost the connection to {server}: {reason}"
    return f"cannot talk to {server}: {reason}"


def call(work: Callable[[], T], client: FilejobClient) -> T:
    """Run a client call; refusals and network failures become one line and exit 1."""
    import httpx

    from filejob.client.errors import ApiError

    try:
        return work()
    except ApiError as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise fail(network_problem(exc, client.server)) from None


def interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """A Ctrl+C that the command does not handle itself ends it with one line and exit 130,
    not click's "Aborted!" and exit 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            raise fail("interrupted", INTERRUPTED) from None

    return run


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
