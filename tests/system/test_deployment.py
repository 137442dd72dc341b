"""What every process of a deployment must agree on: how jobs run (one in-process executor per
database, never mixed with workers) and one link-signing secret."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from filejob.app import create_app
from filejob.db.deployment import ADVISORY_KEY, DeploymentMismatch
from filejob.db.engine import conninfo
from filejob.db.migrations import upgrade
from filejob.jobs.executors.ownership import AdvisoryLock, ExecutorBusy
from tests.support.ports import free_port
from tests.support.processors import test_registry
from tests.support.servers import FILEJOB, start_server, stop_server
from tests.support.services import postgres_database
from tests.support.settings import make_settings


@pytest.fixture
def pg_url(postgres_template: str) -> Iterator[str]:
    with postgres_database(template=postgres_template) as url:
        yield url


def filejob(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FILEJOB, *args],
        env={"PATH": "/usr/bin:/bin", "FILEJOB_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def start(app: FastAPI) -> None:
    async with app.router.lifespan_context(app):
        pass


async def test_an_inprocess_server_refuses_a_database_run_by_workers(
    tmp_path: Path, pg_url: str
) -> None:
    workers = make_settings(tmp_path, database_url=pg_url, executor="procrastinate")
    await start(create_app(workers, registry=test_registry()))  # records `procrastinate`
    inprocess = make_settings(tmp_path, database_url=pg_url, executor="inprocess")
    with pytest.raises(DeploymentMismatch, match="FILEJOB_EXECUTOR=procrastinate"):
        await start(create_app(inprocess, registry=test_registry()))


async def test_a_worker_process_refuses_a_database_run_in_process(
    tmp_path: Path, pg_url: str
) -> None:
    inprocess = make_settings(tmp_path, database_url=pg_url, executor="inprocess")
    await start(create_app(inprocess, registry=test_registry()))
    env = {"FILEJOB_DATABASE_URL": pg_url, "FILEJOB_EXECUTOR": "procrastinate"}
    result = filejob(tmp_path, "worker", **env)
    assert result.returncode == 2
    assert "FILEJOB_EXECUTOR=inprocess" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_records_and_switches_the_executor_only_when_nothing_of_the_old_mode_runs(
    tmp_path: Path, pg_url: str
) -> None:
    env = {"FILEJOB_DATABASE_URL": pg_url}
    first = filejob(tmp_path, "db", "upgrade", **env, FILEJOB_EXECUTOR="procrastinate")
    assert first.returncode == 0, first.stderr
    assert "FILEJOB_EXECUTOR=procrastinate" in first.stdout
    # A routine upgrade run with the wrong setting (a migration job without
    # FILEJOB_EXECUTOR, say) switches nothing and migrates nothing.
    plain = filejob(tmp_path, "db", "upgrade", **env, FILEJOB_EXECUTOR="inprocess")
    assert plain.returncode == 2
    assert "FILEJOB_EXECUTOR=procrastinate" in plain.stderr and "--switch-executor" in plain.stderr
    assert "database at" not in plain.stdout
    switch = ("db", "upgrade", "--switch-executor")
    # A live worker (a fresh heartbeat) holds jobs: moving to in-process is refused.
    with psycopg.connect(conninfo(pg_url), autocommit=True) as connection:
        connection.execute("INSERT INTO procrastinate_workers DEFAULT VALUES")
        refused = filejob(tmp_path, *switch, **env, FILEJOB_EXECUTOR="inprocess")
        assert refused.returncode == 2
        assert "workers are still running" in refused.stderr
        connection.execute("DELETE FROM procrastinate_workers")
    switched = filejob(tmp_path, *switch, **env, FILEJOB_EXECUTOR="inprocess")
    assert switched.returncode == 0, switched.stderr
    assert "(was procrastinate)" in switched.stdout
    # A live in-process server (its advisory lock held) blocks the way back.
    with psycopg.connect(conninfo(pg_url), autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))
        refused = filejob(tmp_path, *switch, **env, FILEJOB_EXECUTOR="procrastinate")
        assert refused.returncode == 2
        assert "in-process `filejob serve` is still running" in refused.stderr


async def test_a_second_inprocess_server_on_one_database_refuses_to_start(
    tmp_path: Path, pg_url: str
) -> None:
    for database_url in ("", pg_url):
        settings = make_settings(tmp_path, database_url=database_url)
        if not database_url:
            await anyio.to_thread.run_sync(upgrade, settings.database_url)
        first = create_app(settings, registry=test_registry())
        async with first.router.lifespan_context(first):
            with pytest.raises(ExecutorBusy, match="already runs"):
                await start(create_app(settings, registry=test_registry()))
        await start(create_app(settings, registry=test_registry()))  # released with the first


async def test_two_data_dirs_naming_one_sqlite_database_cannot_both_run_its_jobs(
    tmp_path: Path,
) -> None:
    one = make_settings(tmp_path / "one")
    two = make_settings(tmp_path / "two", database_url=one.database_url)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    await anyio.to_thread.run_sync(upgrade, one.database_url)
    first = create_app(one, registry=test_registry())
    async with first.router.lifespan_context(first):
        with pytest.raises(ExecutorBusy, match=r"filejob\.db"):
            await start(create_app(two, registry=test_registry()))


async def test_links_verify_on_every_server_and_after_a_restart_without_a_configured_secret(
    tmp_path: Path, pg_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=pg_url, executor="procrastinate")
    assert settings.secret_keys == []
    one, two = (create_app(settings, registry=test_registry()) for _ in range(2))
    async with one.router.lifespan_context(one), two.router.lifespan_context(two):
        link = one.state.services.links.result_link("job-id").url
        query = httpx.URL(link).params
        two.state.services.links.verify("job-id", query["expires"], query["sig"])
    again = create_app(settings, registry=test_registry())
    async with again.router.lifespan_context(again):
        again.state.services.links.verify("job-id", query["expires"], query["sig"])


def test_a_second_filejob_serve_on_one_data_dir_says_so_and_exits_2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process, _ = start_server(data_dir, tmp_path / "server.log")
    try:
        second = filejob(data_dir, "serve", "--port", str(free_port()))
        assert second.returncode == 2, second.stderr
        assert f"another filejob serve (pid {process.pid}) already runs the jobs" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop_server(process)


def test_a_lost_advisory_lock_is_taken_again_unless_another_server_has_it(pg_url: str) -> None:
    lock = AdvisoryLock(conninfo(pg_url))
    lock.acquire()
    try:

        def end_the_locks_session() -> None:
            with psycopg.connect(conninfo(pg_url), autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = %s AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                    (ADVISORY_KEY & 0xFFFFFFFF,),
                )

        end_the_locks_session()  # a database restart, an idle timeout, a cut connection
        assert lock.held()  # nobody else had taken it: taken again
        end_the_locks_session()
        with psycopg.connect(conninfo(pg_url), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))  # another server
            assert not lock.held()
    finally:
        lock.release()
