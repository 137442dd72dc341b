"""The anchors' 1 GiB figures: downloads from filejob (a finished job's result), nginx with
sendfile and the Celery recipe's FastAPI FileResponse; uploads to filejob and to bench/run.py's
bare app with the same request and the same durability (fsync before answering).

The file is 1 GiB of os.urandom bytes (real, incompressible bytes, not a sparse file), written
once and read back so that it sits in the page cache. filejob gets its copy as bench/run.py does:
the file is submitted with `compress` (zstd level 1, which leaves random bytes at their size),
and the job's ~1 GiB result is what filejob serves; nginx and FileResponse serve the input.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from anchor_client import HOST, curl_download
from anchor_systems import BIG_DOWNLOADS, BIG_UPLOADS, System, spawn, stop_group, wait_ready
from run import (
    COMPRESS_PARAMS,
    GiB,
    MiB,
    free_port,
    make_input,
    proc_status,
    start_bare,
    stop_server,
    submit,
    upload_bare,
    upload_filejob,
    wait_job,
)

NGINX = "/usr/sbin/nginx"
Figures = dict[str, float]


def make_big(tmp: Path) -> Path:
    big = tmp / "big.bin"
    make_input(big, GiB)
    return big


def nginx_missing() -> str | None:
    found = shutil.which("nginx") or (NGINX if Path(NGINX).exists() else None)
    return None if found else "nginx is not installed"


def _nginx_conf(prefix: Path, port: int, big: Path) -> str:
    # As root, nginx would run its worker as `nobody`, which cannot read a mkdtemp folder.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # One worker process, as filejob and the recipes' API servers are one process each.
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
{temp}
    sendfile on;
    tcp_nopush on;
    server {{
        listen {HOST}:{port};
        location = /healthz {{ return 200 "ok"; }}
        location = /big.bin {{ alias {big}; default_type application/octet-stream; }}
    }}
}}
"""


def start_nginx(tmp: Path, big: Path) -> System:
    """nginx on a free port, serving `big` with sendfile; its files all under tmp/nginx."""
    prefix = tmp / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(prefix, port, big))
    binary = shutil.which("nginx") or NGINX
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    proc = spawn("nginx", argv, dict(os.environ), tmp)
    try:
        wait_ready("nginx", proc, port, tmp)
    except BaseException:
        stop_group(proc)
        raise
    takes = frozenset({BIG_DOWNLOADS})
    return System("nginx", port, [proc.pid], lambda: stop_group(proc), takes, big_path="/big.bin")


def start_bare_upload(tmp: Path, big: Path) -> System:
    """bench/run.py's bare Starlette app: the upload floor of the same durability."""
    server = start_bare(tmp / "bare-uploads", big, tmp)
    takes = frozenset({BIG_UPLOADS})
    return System(
        "bare", server.port, [server.pid], lambda: stop_server(server), takes, server=server
    )


def give_filejob_big(s: System, big: Path, scratch: Path) -> None:
    """Make filejob hold `big` as a finished job's result (this also warms its upload path)."""
    assert s.server is not None
    os.sync()
    _, job_id = submit(s.server, big, "compress", scratch, COMPRESS_PARAMS)
    job = wait_job(s.server, job_id)
    if job["status"] != "succeeded":
        raise RuntimeError(f"compress job of the 1 GiB file ended {job['status']}")
    os.sync()
    s.big_path = f"/v1/jobs/{job_id}/result"


def big_download(s: System) -> Figures:
    cpu0 = s.cpu()
    seconds, size = curl_download(f"http://{HOST}:{s.port}{s.big_path}")
    cpu = s.cpu() - cpu0
    if size < GiB:
        raise RuntimeError(f"{s.name}: downloaded {size} bytes of {s.big_path}")
    return {"big_down": size / seconds / MiB, "cpu_big_down": cpu / (size / GiB)}


def big_upload(s: System, big: Path, scratch: Path) -> Figures:
    """One multipart upload of `big` (curl -F) answered after an fsync, by filejob (a checksum
    job, awaited and deleted, as bench/run.py does) or by the bare app."""
    assert s.server is not None
    os.sync()  # no upload pays for an earlier one's writeback
    before = proc_status(s.server.pid)["VmRSS"]
    if s.name == "bare":
        t = upload_bare(s.server, big, True, scratch, multipart=True)
    else:
        t = upload_filejob(s.server, big, scratch)
    size = big.stat().st_size
    return {
        "big_up": size / t.seconds / MiB,
        "cpu_big_up": t.server_cpu_s / (size / GiB),
        "rss_growth": (t.peak_rss - before) / MiB,
        "wchar": t.wchar / size,
    }


def make_scratch(tmp: Path) -> Path:
    scratch = tmp / "scratch"
    scratch.mkdir(exist_ok=True)
    return scratch


def curl_missing() -> str | None:
    return None if shutil.which("curl") else "curl is not installed"


def nginx_version() -> str:
    done = subprocess.run([shutil.which("nginx") or NGINX, "-v"], capture_output=True, text=True)
    return done.stderr.strip().rsplit("/", 1)[-1] or "?"
