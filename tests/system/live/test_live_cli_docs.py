"""The command-line page's examples (docs/cli.md), run as written against a live server: only
the server's address differs, and `filejob` is the one next to this Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.servers import FILEJOB, LiveServer

ROOT = Path(__file__).resolve().parents[3]


def examples() -> str:
    text = (ROOT / "docs" / "cli.md").read_text()
    block = text.split("<!-- cli-examples")[1].split("<!-- /cli-examples -->")[0]
    return block.split("```sh\n", 1)[1].rsplit("```", 1)[0]


def test_the_cli_pages_examples_run_as_written(live: LiveServer, tmp_path: Path) -> None:
    for name in ("README.md", "Makefile"):
        shutil.copy(ROOT / name, tmp_path / name)
    script = examples().replace("http://127.0.0.1:8000", live.url)
    assert live.url in script
    env = {**os.environ, "PATH": f"{Path(FILEJOB).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FILEJOB_API_KEY", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("filejob 0.")
    assert "\tsucceeded\t" in out and "exit code 1" in out
    assert "already succeeded; nothing to cancel" in done.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "Makefile.zst",
        "README.md.zst",
    ]
    checksum = json.loads((tmp_path / "result.json").read_text())
    assert checksum  # the checksum processor's report, downloaded twice (--clobber)
    assert f"{live.url}/v1/jobs/" in out  # the link
    assert "deleted " in out
