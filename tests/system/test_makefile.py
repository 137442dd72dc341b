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


def test_test_checks_types_layers_and_the_docs_site(tmp_path: Path) -> None:
    plan = planned("test", tmp_path)
    assert "/mypy" in plan
    assert "/lint-imports" in plan
    assert "mkdocs build --strict" in plan


def test_the_fast_tier_is_style_types_and_unit_tests(tmp_path: Path) -> None:
    plan = planned("test-fast", tmp_path)
    assert "ruff check" in plan
    assert "/mypy" in plan
    assert "pytest -q -n 0 tests/unit" in plan
    assert "tests/api" not in plan and "tests/system" not in plan
