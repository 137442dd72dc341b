"""The uploads bench's client: one 1 GiB file sent four ways with httpx, each body streamed
from the file in 1 MiB reads (never whole in memory), each timed from the first byte of the
first request to the answer that acknowledges the last one.

- `bare`: `POST /upload?fsync=1` on bench/bare_app.py, the raw body (`fsync=False`: its
  `POST /upload` without the fsync, the cheapest answer a server can give: the client's ceiling).
- `raw`: filejob's `POST /v1/jobs?processor=checksum` with the file as the whole body, until
  the 202.
- `multipart`: filejob's `POST /v1/jobs` with a form (`processor`, then `file`), until the
  202; the form is framed here, around the same 1 MiB reads, so the client does the same work.
- `tus`: filejob's `POST /v1/uploads` (creation) then PATCHes of `patch` bytes on the same
  keep-alive connection, until the last one's 204.

Whatever filejob made of an upload (a `checksum` job) is awaited and deleted by `settle`,
outside the timing, so that no job competes with the next upload for the CPUs.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
READ_BYTES = 1024 * 1024
BOUNDARY = "filejobuploadsbench7MA4YWxkTrZu0gW"
TUS = {"Tus-Resumable": "1.0.0"}
FINAL = {"succeeded", "failed", "cancelled", "expired"}
JOB_TIMEOUT = 300.0
TIMEOUT = httpx.Timeout(120.0)


@dataclass(frozen=True)
class Sent:
    """One timed upload: seconds, and what to clean up after it (a job, or a bare file)."""

    seconds: float
    waited: float = 0.0  # of which: from each request's last byte sent to its answer
    job_id: str | None = None
    stored: str | None = None  # the bare app's file
    requests: int = 1


class Body:
    """A request body that notes when its last byte went (handed to the socket): what follows
    until the answer is the server's own time (fsync, commit, admission), the client idle."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.sent_at = 0.0

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        self.sent_at = time.perf_counter()

    def waited(self) -> float:
        return time.perf_counter() - self.sent_at


def file_chunks(path: Path, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    """`length` bytes of `path` from `offset` (to the end: None), in `READ_BYTES` reads."""
    with path.open("rb") as f:
        f.seek(offset)
        left = path.stat().st_size - offset if length is None else length
        while left > 0:
            chunk = f.read(min(READ_BYTES, left))
            if not chunk:
                raise RuntimeError(f"{path} ended {left} bytes early")
            left -= len(chunk)
            yield chunk


def _url(port: int, path: str) -> str:
    return f"http://{HOST}:{port}{path}"


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )
    return response


def post_bare(port: int, big: Path, *, fsync: bool = True) -> Sent:
    size = big.stat().st_size
    headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    body = Body(file_chunks(big))
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        started = time.perf_counter()
        response = client.post(
            _url(port, "/upload?fsync=1" if fsync else "/upload"), content=body, headers=headers
        )
        seconds, waited = time.perf_counter() - started, body.waited()
    stored = _expect(response, 200).json()
    if stored["size"] != size:
        raise RuntimeError(f"the bare app stored {stored['size']} bytes of {size}")
    return Sent(seconds, waited, stored=str(stored["path"]))


def post_raw(port: int, big: Path) -> Sent:
    headers = {
        "Content-Length": str(big.stat().st_size),
        "Content-Type": "application/octet-stream",
    }
    path = f"/v1/jobs?processor=checksum&filename={big.name}"
    body = Body(file_chunks(big))
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        started = time.perf_counter()
        response = client.post(_url(port, path), content=body, headers=headers)
        seconds, waited = time.perf_counter() - started, body.waited()
    return Sent(seconds, waited, job_id=str(_expect(response, 202).json()["id"]))


def _form(big: Path) -> tuple[bytes, bytes]:
    """The multipart framing before and after the file's bytes."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="processor"\r\n\r\nchecksum\r\n'
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{big.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def post_multipart(port: int, big: Path) -> Sent:
    head, tail = _form(big)

    def form() -> Iterator[bytes]:
        yield head
        yield from file_chunks(big)
        yield tail

    body = Body(form())
    headers = {
        "Content-Length": str(len(head) + big.stat().st_size + len(tail)),
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        started = time.perf_counter()
        response = client.post(_url(port, "/v1/jobs"), content=body, headers=headers)
        seconds, waited = time.perf_counter() - started, body.waited()
    return Sent(seconds, waited, job_id=str(_expect(response, 202).json()["id"]))


def tus_metadata(big: Path) -> str:
    pairs = {"processor": "checksum", "filename": big.name}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def job_of_link(link: str) -> str:
    """The job id of `Link: </v1/jobs/{id}>; rel="monitor"`."""
    return link.split(">", 1)[0].rsplit("/", 1)[-1]


def tus_upload(port: int, big: Path, patch: int) -> Sent:
    size = big.stat().st_size
    creation = {**TUS, "Upload-Length": str(size), "Upload-Metadata": tus_metadata(big)}
    requests, waited = 1, 0.0
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        started = time.perf_counter()
        created = _expect(client.post(_url(port, "/v1/uploads"), headers=creation), 201)
        location = created.headers["location"]
        offset, answer = 0, created
        while offset < size:
            length = min(patch, size - offset)
            headers = {
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Length": str(length),
                "Content-Type": "application/offset+octet-stream",
            }
            body = Body(file_chunks(big, offset, length))
            answer = _expect(client.patch(_url(port, location), content=body, headers=headers), 204)
            waited += body.waited()
            offset, requests = int(answer.headers["upload-offset"]), requests + 1
        seconds = time.perf_counter() - started
    if "link" not in answer.headers:
        raise RuntimeError(f"the last PATCH of {location} named no job")
    link = answer.headers["link"]
    return Sent(seconds, waited, job_id=job_of_link(link), requests=requests)


def settle(port: int, sent: Sent, sha256: str) -> None:
    """Remove what an upload left: the bare app's file, or filejob's job once it finished.
    The job must have succeeded on the very file sent (its input's sha256 is `sha256`)."""
    if sent.stored is not None:
        Path(sent.stored).unlink()
    if sent.job_id is None:
        return
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        deadline = time.monotonic() + JOB_TIMEOUT
        while True:
            job = _expect(client.get(_url(port, f"/v1/jobs/{sent.job_id}")), 200).json()
            if job["status"] in FINAL:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {sent.job_id} not final after {JOB_TIMEOUT} s")
            time.sleep(0.1)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {sent.job_id} ended {job['status']}: {job.get('error')}")
        if job["input"]["sha256"] != sha256:
            raise RuntimeError(f"job {sent.job_id}: stored input is not the file sent")
        _expect(client.delete(_url(port, f"/v1/jobs/{sent.job_id}")), 204)
