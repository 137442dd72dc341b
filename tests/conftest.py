from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.jobs.executors.inprocess import InProcessExecutor
from service.migrations import upgrade
from tests.support import test_registry


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "workers": 2,
        "progress_interval": 0.02,
        "sweep_interval": 3600,
        "fsync": False,
        "min_free_bytes": 0,  # CI disks can be small; admission control has its own tests
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its `app`."""
    return {}


# The PostgreSQL server the tests create their databases on (see .ci/run, which starts it).
POSTGRES = os.environ.get("FILEJOB_TEST_POSTGRES", "postgres@127.0.0.1:5432")
# embedded: SQLite + the local folder. distributed: PostgreSQL + S3 (SeaweedFS).
PROFILES = ["embedded", "distributed"]
BUCKET = "filejob-test"


def _admin(statement: str) -> None:
    with psycopg.connect(f"postgresql://{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A database migrated once per run; each test copies it (CREATE DATABASE ... TEMPLATE),
    which takes milliseconds where migrating takes a second."""
    name = f"filejob_template_{os.getpid()}"
    _admin(f"DROP DATABASE IF EXISTS {name}")
    _admin(f"CREATE DATABASE {name}")
    upgrade(f"postgresql+psycopg://{POSTGRES}/{name}")
    yield name
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real SeaweedFS (master, volume, filer and S3 gateway in one `weed server`) on free
    127.0.0.1 ports, data in a temp dir, with the bucket BUCKET; stopped by its PID."""
    root = tmp_path_factory.mktemp("seaweedfs")
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: _free_port() for name in ports}
    argv = [str(Path(sys.executable).with_name("weed")), "server", f"-dir={root}"]
    argv += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3", "-volume.max=20"]
    argv += ["-master.volumeSizeLimitMB=64", "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false"]
    for name in ports:
        argv += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    with (root / "weed.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (root / "weed.log").read_text()[-2000:]
            try:
                if httpx.put(f"{endpoint}/{BUCKET}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "SeaweedFS did not start in 60 s"
            time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def profile() -> str:
    """Which deployment profile a test runs on; directories whose tests must hold on every
    profile override this with `params=PROFILES` (see tests/api/conftest.py)."""
    return "embedded"


@pytest.fixture
def profile_settings(request: pytest.FixtureRequest, profile: str) -> dict[str, Any]:
    """The storage half of a profile: each distributed test gets its own prefix."""
    if profile == "embedded":
        return {}
    endpoint = request.getfixturevalue("seaweedfs")
    return {
        "storage_url": f"s3://{BUCKET}/{secrets.token_hex(6)}",
        "s3_endpoint": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "filejob",
        "s3_secret_access_key": "filejob-test-secret",
    }


@pytest.fixture
def database_url(request: pytest.FixtureRequest, profile: str) -> Iterator[str]:
    """ "" (SQLite under the data dir) or a fresh PostgreSQL database, dropped afterwards."""
    if profile == "embedded":
        yield ""
        return
    template = request.getfixturevalue("postgres_template")
    name = f"filejob_test_{secrets.token_hex(6)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield f"postgresql+psycopg://{POSTGRES}/{name}"
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(
    data_dir: Path,
    settings_overrides: dict[str, Any],
    database_url: str,
    profile_settings: dict[str, Any],
) -> Settings:
    values = {"database_url": database_url, **profile_settings, **settings_overrides}
    settings = make_settings(data_dir, **values)
    if not database_url:
        upgrade(settings.database_url)
    return settings


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings, registry=test_registry())
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://filejob.test") as client:
        yield client


@pytest.fixture
def drain(app: FastAPI) -> Callable[[], Any]:
    """Run every submitted job to its end (the executor's burst mode), then return."""
    executor = app.state.services.executor
    assert isinstance(executor, InProcessExecutor)
    return executor.drain
