"""tus with a real client (tuspy) against `filejob serve` in a subprocess, through a TCP relay
that can cut a connection mid-PATCH or hold it while the server is killed: the upload resumes
where the server's acknowledged offset says, and the finished upload's job succeeds with the
right sha256. On SQLite with local storage, and on PostgreSQL with S3 storage (SeaweedFS), where
an upload's bytes live in an S3 multipart upload and none on the server's disk. (PostgreSQL
with local storage adds nothing the two do not: the leases and rows are PostgreSQL's in the
second; tests/api/uploads/tus runs every request on both databases.)"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from tests.support.relay import close_sockets
from tests.support.servers import create_key, kill, start_server, stop_server
from tests.support.services import postgres_database, s3_settings
from tests.support.wait import wait_until

CHUNK = 1 << 20
_OFFSET = re.compile(rb"(?i)\r\nupload-offset: *(\d+)\r\n")


@dataclass
class Relay:
    """127.0.0.1:`port` forwarded to `upstream`; each connection's bytes towards the server
    are counted (`sent`), and one connection can be cut (`cut_at`) or held (`hold_at`) once it
    has forwarded that many bytes."""

    upstream: int
    cut_at: int | None = None
    hold_at: int | None = None
    sent: int = 0
    offsets: list[int] = field(default_factory=list)  # each PATCH's Upload-Offset
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:  # the server is down (killed, not started yet): as a client sees it
                close_sockets(downstream)
                continue
            threading.Thread(target=self._pump_up, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            close_sockets(source, target)

    def _pump_up(self, source: socket.socket, target: socket.socket) -> None:
        """Towards the server, counting, and cutting or holding where asked."""
        forwarded = 0
        try:
            while data := source.recv(65536):
                with self._lock:
                    cut, hold = self.cut_at, self.hold_at
                    limit = min(x for x in (cut, hold, 1 << 62) if x is not None)
                    if forwarded + len(data) >= limit:
                        data = data[: limit - forwarded]
                        self.cut_at = self.hold_at = None  # once
                    self.sent += len(data)
                    self.offsets += [int(n) for n in _OFFSET.findall(data)]
                target.sendall(data)
                forwarded += len(data)
                if forwarded == limit and limit == hold:
                    self.held.set()
                    self.release.wait(60)
                    return
                if forwarded == limit and limit == cut:
                    return
        except OSError:
            pass
        finally:
            close_sockets(source, target)


@dataclass
class Server:
    """A `filejob serve` that can be killed and started again on its data dir."""

    data_dir: Path
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        self.process, self.url = start_server(self.data_dir, self.log, self.env)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        assert self.process is not None
        kill(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_server(self.process)

    @property
    def on_s3(self) -> bool:
        return self.env.get("FILEJOB_STORAGE_URL", "").startswith("s3://")

    def upload_files(self) -> list[str]:
        """What is in the folder where the local store keeps uploads' bytes."""
        folder = self.data_dir / "uploads"
        return [path.name for path in folder.iterdir()] if folder.exists() else []


@pytest.fixture(params=["sqlite", "s3"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with _database(request.param) as url:
        env = {"FILEJOB_DATABASE_URL": url} if url else {}
        if request.param == "s3":
            env |= _s3_env(request.getfixturevalue("seaweedfs"))
        live = Server(tmp_path / "data", tmp_path / "server.log", env)
        live.start()
        try:
            yield live
        finally:
            live.stop()


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        yield ""
        return
    with postgres_database() as url:
        yield url


def _s3_env(endpoint: str) -> dict[str, str]:
    return {f"FILEJOB_{name.upper()}": value for name, value in s3_settings(endpoint).items()}


@pytest.fixture
def relay(server: Server) -> Iterator[Relay]:
    forward = Relay(server.port)
    yield forward
    forward.close()


def _leased(server: Server) -> bool:
    """Whether a request holds an upload's lease, as the server's database says."""
    url = server.env.get("FILEJOB_DATABASE_URL") or f"sqlite:///{server.data_dir / 'filejob.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            held = connection.execute(
                text("SELECT count(*) FROM resumable_uploads WHERE lease_token IS NOT NULL")
            )
            return bool(held.scalar_one())
    finally:
        engine.dispose()


def _file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    content = os.urandom(size)
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    return path, content


def _uploader(base: str, path: Path, headers: dict[str, str] | None = None, **options: Any) -> Any:
    client = tus_client.TusClient(f"{base}/v1/uploads", headers=headers or {})
    metadata = {"filename": path.name, "processor": "checksum"}
    return client.uploader(str(path), metadata=metadata, retry_delay=1, **options)


def _finished_job(base: str, upload_url: str, headers: dict[str, str] | None = None) -> Any:
    """The job the upload made, once it has succeeded."""
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        upload = http.get(upload_url.removeprefix(base)).json()
        assert upload["job_id"], upload

        def succeeded() -> Any:
            job = http.get(f"/v1/jobs/{upload['job_id']}").json()
            return job if job["status"] == "succeeded" else None

        return wait_until(succeeded, timeout=60)


def test_tuspy_uploads_in_chunks_with_checksums(server: Server, tmp_path: Path) -> None:
    path, content = _file(tmp_path, 3 * CHUNK + 123)
    uploader = _uploader(server.url, path, chunk_size=CHUNK, upload_checksum=True)
    uploader.upload()
    link = uploader.request.response_headers["link"]
    job = _finished_job(server.url, uploader.url)
    assert link == f'</v1/jobs/{job["id"]}>; rel="monitor"'
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    assert job["input"]["filename"] == "input.bin"


def test_tuspy_resumes_after_a_cut(server: Server, relay: Relay, tmp_path: Path) -> None:
    size = 6 * CHUNK
    path, content = _file(tmp_path, size)
    relay.cut_at = 4 * CHUNK  # mid-PATCH: the whole file is one PATCH
    uploader = _uploader(relay.url, path, retries=5)
    uploader.upload()
    job = _finished_job(relay.url, uploader.url)
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    # The bytes that arrived before the cut were kept: the client went on from there.
    assert 0 < relay.offsets[-1] <= 4 * CHUNK
    assert relay.sent < size + 4 * CHUNK - CHUNK


def test_tuspy_resumes_after_the_server_is_killed_mid_patch(
    server: Server, relay: Relay, tmp_path: Path
) -> None:
    path, content = _file(tmp_path, 6 * CHUNK)
    # Retries for a minute: the killed server's restart (schema check, warm-up) can take many
    # seconds on a loaded machine, and the client sees the cut when the server dies.
    uploader = _uploader(relay.url, path, chunk_size=2 * CHUNK, retries=60)
    uploader.upload(stop_at=2 * CHUNK)  # one PATCH acknowledged: offset 2 MiB is durable
    if server.on_s3:  # durable in the bucket (a tail object), not on this server's disk
        assert server.upload_files() == []
    relay.hold_at = 3 * CHUNK // 2  # the next PATCH stops half-way, held open
    done = threading.Event()
    failure: list[BaseException] = []

    def upload_rest() -> None:
        try:
            uploader.upload()
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=upload_rest, daemon=True).start()
    assert relay.held.wait(60)
    wait_until(lambda: _leased(server), timeout=30)  # the server has claimed the upload
    server.kill()  # SIGKILL while the PATCH holds the upload's lease
    server.start()  # the same data dir, a new port
    relay.upstream = server.port
    relay.release.set()  # the held connection drops; the client retries from HEAD's offset
    assert done.wait(120) and not failure, failure
    job = _finished_job(relay.url, uploader.url)
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
    # The dead server's lease was taken over at once, not waited out.
    assert "taken over from a dead server" in server.log.read_text()
    assert server.upload_files() == []


def test_tuspy_resumes_after_a_restart_from_heads_offset(server: Server, tmp_path: Path) -> None:
    path, content = _file(tmp_path, 4 * CHUNK)
    first = _uploader(server.url, path, chunk_size=CHUNK)
    first.upload(stop_at=3 * CHUNK)
    upload_path = first.url.removeprefix(server.url)
    server.kill()
    server.start()
    resumed = _uploader(server.url, path, url=f"{server.url}{upload_path}", chunk_size=CHUNK)
    assert resumed.offset == 3 * CHUNK  # from HEAD, after the restart
    resumed.upload()
    job = _finished_job(server.url, resumed.url)
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()


def test_tuspy_cannot_touch_another_keys_upload(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"FILEJOB_AUTH": "required", "FILEJOB_SECRET_KEY": "k" * 40}
    live = Server(data_dir, tmp_path / "server.log", env)
    live.start()
    try:
        alice = {"Authorization": f"Bearer {create_key(data_dir, name='alice', **env)}"}
        bob = {"Authorization": f"Bearer {create_key(data_dir, name='bob', **env)}"}
        path, _ = _file(tmp_path, CHUNK)
        theirs = _uploader(live.url, path, alice, chunk_size=CHUNK // 2)
        theirs.upload(stop_at=CHUNK // 2)
        with pytest.raises(TusCommunicationError) as refused:
            _uploader(live.url, path, bob, url=theirs.url)  # looks up the offset: HEAD
        assert refused.value.status_code == 404
        theirs.upload()
        assert _finished_job(live.url, theirs.url, alice)["input"]["size"] == CHUNK
    finally:
        live.stop()


def _vm_hwm(pid: int) -> int:
    """The process's peak resident memory so far, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


def test_a_200_mib_upload_to_s3_is_never_whole_in_memory(
    seaweedfs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One PATCH of 200 MiB into S3: the server's peak RSS grows by far less than the upload
    (one part buffered at a time, in a temp file), and the job's input is right."""
    size = 200 * CHUNK
    path, sha = tmp_path / "big.bin", hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(size // CHUNK):
            chunk = os.urandom(CHUNK)
            sha.update(chunk)
            file.write(chunk)
    with postgres_database() as url:
        env = {"FILEJOB_DATABASE_URL": url, "FILEJOB_MAX_UPLOAD_BYTES": str(size)}
        live = Server(tmp_path / "data", tmp_path / "server.log", env | _s3_env(seaweedfs))
        live.start()
        try:
            assert live.process is not None
            warm = _uploader(live.url, _file(tmp_path, CHUNK)[0])  # every module loaded
            warm.upload()
            _finished_job(live.url, warm.url)
            before = _vm_hwm(live.process.pid)
            job = _upload_streamed(live.url, path, size)
            peak = _vm_hwm(live.process.pid)
            assert job["input"]["sha256"] == sha.hexdigest()
            assert live.upload_files() == []
        finally:
            live.stop()
    with capsys.disabled():
        print(f"\n200 MiB tus upload to S3: peak RSS {before >> 20} MiB -> {peak >> 20} MiB")
    assert peak - before < 64 * CHUNK


def _upload_streamed(base: str, path: Path, size: int) -> Any:
    """`path` as one tus upload of one PATCH, read from disk as it is sent; its job, done."""

    def body() -> Iterator[bytes]:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    tus = {"Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=base, timeout=300) as http:
        metadata = "processor " + base64.b64encode(b"checksum").decode()
        created = http.post(
            "/v1/uploads", headers={**tus, "Upload-Length": str(size), "Upload-Metadata": metadata}
        )
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        patched = http.patch(
            url,
            content=body(),
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(size),
            },
        )
        assert patched.status_code == 204, patched.text
    return _finished_job(base, f"{base}{url}")


def test_tuspy_partial_uploads_joined_by_a_final_one(
    server: Server, relay: Relay, tmp_path: Path
) -> None:
    """Concatenation with tuspy: each part a partial upload (`Upload-Concat: partial`), sent
    with checksums, the first cut in its second PATCH and resumed; a final upload joins them
    into the job."""
    content = os.urandom(3 * CHUNK + 5)
    urls = []
    for index, part in enumerate((content[: 2 * CHUNK], content[2 * CHUNK :])):
        path = tmp_path / f"part{index}.bin"
        path.write_bytes(part)
        partial = {"Upload-Concat": "partial"}
        uploader = _uploader(
            relay.url, path, partial, chunk_size=CHUNK, retries=5, upload_checksum=True
        )
        if index == 0:
            uploader.upload(stop_at=CHUNK)  # one PATCH acknowledged
            relay.cut_at = CHUNK // 2  # the next one is cut half-way
        uploader.upload()
        urls.append(uploader.url.removeprefix(relay.url))
    # A checksummed request is kept only whole: the cut one was sent again, from the offset
    # the one before it reached, not from zero.
    assert relay.offsets[:3] == [0, CHUNK, CHUNK], relay.offsets
    with httpx.Client(base_url=relay.url, timeout=30) as http:
        final = http.post(
            "/v1/uploads",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Concat": "final;" + " ".join(urls),
                "Upload-Metadata": "processor " + base64.b64encode(b"checksum").decode(),
            },
        )
    assert final.status_code == 201, final.text
    job = _finished_job(relay.url, relay.url + final.headers["location"])
    assert final.headers["link"] == f'</v1/jobs/{job["id"]}>; rel="monitor"'
    assert job["input"]["sha256"] == hashlib.sha256(content).hexdigest()
