"""Real backing services for the distributed profile: a PostgreSQL database and a SeaweedFS
S3 store, each made on 127.0.0.1 and removed afterwards (used by the tests and by bench/)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg

from filejob.db.migrations import upgrade
from tests.support.ports import free_ports, listens_on
from tests.support.wait import wait_until

# The PostgreSQL server the tests create their databases on (see .ci/run, which starts it).
POSTGRES = os.environ.get("FILEJOB_TEST_POSTGRES", "postgres@127.0.0.1:5432")
BUCKET = "filejob-test"


def postgres_admin(statement: str) -> None:
    with psycopg.connect(f"postgresql://{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(statement)


@contextmanager
def postgres_database(template: str | None = None) -> Iterator[str]:
    """A new database (migrated, or copied from a migrated `template`), dropped afterwards;
    yields its SQLAlchemy URL."""
    name = f"filejob_{secrets.token_hex(6)}"
    postgres_admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    url = f"postgresql+psycopg://{POSTGRES}/{name}"
    try:
        if template is None:
            upgrade(url)
        yield url
    finally:
        postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


SEAWEEDFS_ATTEMPTS = 3


@contextmanager
def seaweedfs(root: Path) -> Iterator[str]:
    """A real SeaweedFS (master, volume, filer and S3 gateway in one `weed server`) on free
    127.0.0.1 ports, its data under `root`, with the bucket BUCKET; stopped by its PID.
    Yields the S3 endpoint URL."""
    for attempt in range(1, SEAWEEDFS_ATTEMPTS + 1):
        # A port chosen free can be taken before weed binds it (weed then exits): start
        # again on new ports rather than fail every S3 test of the session.
        process, s3_port = _start_seaweedfs(root / f"run{attempt}")
        try:
            if _seaweedfs_ready(process, s3_port, root / f"run{attempt}" / "weed.log"):
                yield f"http://127.0.0.1:{s3_port}"
                return
        finally:
            _stop(process)
    raise AssertionError(f"SeaweedFS did not start in {SEAWEEDFS_ATTEMPTS} attempts")


def _start_seaweedfs(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """weed, started on free ports; with its S3 port."""
    root.mkdir(parents=True)
    names = ("master", "volume", "filer", "s3")
    chosen = iter(free_ports(2 * len(names)))
    argv = [str(Path(sys.executable).with_name("weed")), "server", f"-dir={root}"]
    argv += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3", "-volume.max=20"]
    argv += ["-master.volumeSizeLimitMB=64", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    argv += ["-iam=false"]
    ports = {name: (next(chosen), next(chosen)) for name in names}  # (HTTP, gRPC)
    for name, (port, grpc) in ports.items():
        argv += [f"-{name}.port={port}", f"-{name}.port.grpc={grpc}"]
    with (root / "weed.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    return process, ports["s3"][0]


def _seaweedfs_ready(process: subprocess.Popen[bytes], s3_port: int, log: Path) -> bool:
    """Wait until the bucket exists and volumes are allocated; False if weed exited."""
    endpoint = f"http://127.0.0.1:{s3_port}"

    def up_or_exited() -> bool:
        if process.poll() is not None:
            return True
        try:
            created = httpx.put(f"{endpoint}/{BUCKET}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False
        # Another process that took the S3 port first would answer too.
        return created and listens_on(process.pid, s3_port)

    wait_until(up_or_exited, timeout=60, interval=0.2, message="SeaweedFS did not start in 60 s")
    if process.poll() is not None:
        print(f"SeaweedFS exited while starting:\n{log.read_text()[-2000:]}")
        return False
    # The first object makes SeaweedFS allocate its volumes (seconds): pay that here,
    # not in whichever test happens to write first.
    warm = httpx.put(f"{endpoint}/{BUCKET}/warm-up", content=b"x", timeout=60)
    assert warm.status_code == 200, warm.text
    httpx.delete(f"{endpoint}/{BUCKET}/warm-up", timeout=60)
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)  # weed can take 20 s to stop; its data is throwaway
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def s3_settings(endpoint: str) -> dict[str, str]:
    """Settings for a fresh prefix of the test bucket on `endpoint`."""
    return {
        "storage_url": f"s3://{BUCKET}/{secrets.token_hex(6)}",
        "s3_endpoint": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": "filejob",
        "s3_secret_access_key": "filejob-test-secret",
    }
