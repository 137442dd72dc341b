"""One composition root for every process: the worker and the CLI are built by
`filejob.compose`, without the web app; the app adds only what HTTP needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import filejob

PACKAGE = Path(filejob.__file__).parent

# What every process builds one way: constructed (or checked) in compose.py and nowhere else.
COMPOSED = {
    "Database",
    "JobRunner",
    "Admission",
    "JobService",
    "Sweeper",
    "WebhookDispatcher",
    "check_executor",
}


def _called(path: Path) -> dict[str, list[int]]:
    """The names `path` calls (`f(...)` or `x.f(...)`), each with the lines it does so on."""
    calls: dict[str, list[int]] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name:
                calls.setdefault(name, []).append(node.lineno)
    return calls


def test_the_worker_does_not_load_the_web_app() -> None:
    probe = (
        "import sys, filejob.worker, filejob.cli; "
        "loaded = [m for m in ('filejob.app', 'fastapi') if m in sys.modules]; "
        "print(','.join(loaded))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_only_compose_builds_what_every_process_shares() -> None:
    elsewhere = [
        f"{path.relative_to(PACKAGE)}:{line} calls {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "compose.py"
        for name, lines in _called(path).items()
        if name in COMPOSED
        for line in lines
    ]
    assert elsewhere == []


def test_the_app_and_the_worker_are_built_through_compose() -> None:
    app, worker = _called(PACKAGE / "app.py"), _called(PACKAGE / "worker.py")
    assert {"opened", "job_service", "sweeper", "webhooks"} <= app.keys()
    assert {"opened", "job_runner", "storage_for"} <= worker.keys()
