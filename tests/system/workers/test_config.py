"""FILEJOB_EXECUTOR=procrastinate is chosen once, validated, and refused without PostgreSQL;
its schema comes and goes with the Alembic migrations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import create_engine

from filejob.config import Settings
from filejob.db.engine import conninfo
from filejob.db.migrations import alembic_config, upgrade
from filejob.jobs.model import Base
from filejob.worker import Liveness
from tests.support.servers import run_cli
from tests.support.services import postgres_database


def test_procrastinate_without_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="keeps its queue in PostgreSQL"):
        Settings(data_dir=tmp_path, executor="procrastinate")
    settings = Settings(
        data_dir=tmp_path, executor="procrastinate", database_url="postgresql+psycopg://h/db"
    )
    assert settings.executor == "procrastinate"
    assert Settings(data_dir=tmp_path).executor == "inprocess"  # the default


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["serve", "--port", "1"], {"FILEJOB_EXECUTOR": "procrastinate"}, "PostgreSQL"),
        (["worker"], {"FILEJOB_EXECUTOR": "procrastinate"}, "PostgreSQL"),
        (["worker"], {}, "FILEJOB_EXECUTOR=procrastinate"),
        (["worker"], {"FILEJOB_EXECUTOR": "celery"}, "executor"),
    ],
    ids=["serve-on-sqlite", "worker-on-sqlite", "worker-without-executor", "unknown-executor"],
)
def test_misconfigured_commands_refuse_to_start(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = run_cli(tmp_path, *args, **env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_liveness_fits_within_stalled_after() -> None:
    for stalled_after in (2.0, 60.0, 600.0):
        live = Liveness.within(stalled_after)
        assert live.heartbeat + live.silent_after + live.check_every <= stalled_after
        assert live.heartbeat < live.silent_after  # a live worker is never taken for dead


def test_conninfo_drops_the_driver() -> None:
    assert conninfo("postgresql+psycopg://u:p@h:5/db") == "postgresql://u:p@h:5/db"
    assert conninfo("postgresql://h/db") == "postgresql://h/db"


def test_postgresql_head_matches_models_and_downgrades() -> None:
    with postgres_database() as url:
        plain = conninfo(url)

        def procrastinate_objects() -> int:
            with psycopg.connect(plain) as connection:
                row = connection.execute(
                    "SELECT (SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procrastinate%')"
                    " + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%')"
                ).fetchone()
                return int(row[0]) if row else 0

        with create_engine(url).connect() as connection:
            diff = compare_metadata(
                MigrationContext.configure(
                    connection,
                    opts={"include_name": lambda name, *_: not str(name).startswith("procr")},
                ),
                Base.metadata,
            )
        assert diff == []
        assert procrastinate_objects() > 10
        command.downgrade(alembic_config(url), "0004")
        assert procrastinate_objects() == 0
        command.downgrade(alembic_config(url), "base")
        upgrade(url)
        assert procrastinate_objects() > 10
