"""One composition root for every process: the worker and the CLI are built by
`filejob.compose`, without the web app."""

from __future__ import annotations

import subprocess
import sys


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
