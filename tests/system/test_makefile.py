"""`make serve` installs what serving needs; `make test` adds the test tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def planned(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run in a fresh clone (no .venv yet), without running it."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = subprocess.run(
        ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_serve_installs_only_what_serving_needs(tmp_path: Path) -> None:
    plan = planned("serve", tmp_path)
    assert "pip install --quiet -e ." in plan
    assert "[dev]" not in plan
    assert "filejob serve" in plan


def test_test_installs_the_dev_extras(tmp_path: Path) -> None:
    plan = planned("test", tmp_path)
    assert "-e '.[dev]'" in plan
    assert "pytest" in plan
