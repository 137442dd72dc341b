"""A client generated from the served schema works: openapi-python-client generates a Python
package from a real server's `/openapi.json`, without a single warning, and that package alone
uploads a file, polls its job to `succeeded`, downloads the result and reads a problem."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.servers import LiveServer
from tests.support.wait import wait_until

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
PACKAGE = "filejob_generated_sdk"
# No post-hooks: the generator would run ruff over its output, which only formats it.
CONFIG = "post_hooks: []\n"


@pytest.fixture(scope="module")
def generated(
    live: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModuleType, str]]:
    """The package generated from the live server's schema (imported from a temp dir), and
    what the generator printed."""
    root = tmp_path_factory.mktemp("sdk")
    (root / "config.yaml").write_text(CONFIG)
    command = [GENERATOR, "generate", "--url", f"{live.url}/openapi.json", "--meta", "none"]
    command += ["--output-path", str(root / PACKAGE), "--config", str(root / "config.yaml")]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE), output
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def sdk(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_generator_has_no_warnings(generated: tuple[ModuleType, str]) -> None:
    _, output = generated
    lines = [line for line in output.splitlines() if line.strip()]
    # All it says when all is well; a warning comes with "Warning(s) encountered ...".
    assert len(lines) == 1 and lines[0].startswith("Generating "), output
    assert "warning" not in output.lower(), output


def test_upload_poll_download_with_the_generated_client(
    live: LiveServer, generated: tuple[ModuleType, str]
) -> None:
    package, _ = generated
    data = bytes(range(256)) * 4000 + b"generated client\n"
    types, models = sdk("types"), sdk("models")
    submit_job, get_job = sdk("api.jobs.submit_job"), sdk("api.jobs.get_job")
    download_result = sdk("api.results.download_result")
    upload = types.File(payload=io.BytesIO(data), file_name="in.bin", mime_type="text/plain")
    form = models.BodySubmitJob(
        file=upload, processor="checksum", delete_after_download=False, max_attempts=2
    )

    with package.Client(base_url=live.url, raise_on_unexpected_status=True) as client:
        submitted = submit_job.sync_detailed(client=client, body=form)
        assert submitted.status_code == 202, submitted.content
        job = submitted.parsed
        assert isinstance(job, models.JobOut), submitted.content
        assert (job.processor, job.max_attempts, job.status.value) == ("checksum", 2, "queued")
        assert job.delete_after_download is False
        assert job.input_.size == len(data)  # `input` is a builtin: the generator prefixes it

        def finished() -> Any:
            polled = get_job.sync(job_id=job.id, client=client)
            assert isinstance(polled, models.JobOut), polled
            return polled if polled.status.value in ("succeeded", "failed") else None

        done = wait_until(finished, timeout=30, message=f"job {job.id} did not finish in 30 s")
        assert done.status == models.JobStatus.SUCCEEDED, done.error
        result = download_result.sync(job_id=job.id, client=client)

    assert isinstance(result, types.File), result
    body = result.payload.read()
    assert hashlib.sha256(body).hexdigest() == done.result.sha256
    digests = json.loads(body)
    assert digests["sha256"] == hashlib.sha256(data).hexdigest() == done.input_.sha256
    assert digests["size"] == len(data)


def test_errors_arrive_as_problems(live: LiveServer, generated: tuple[ModuleType, str]) -> None:
    package, _ = generated
    problem = sdk("models").Problem
    get_job, submit_job = sdk("api.jobs.get_job"), sdk("api.jobs.submit_job")
    upload = sdk("types").File(payload=io.BytesIO(b"x"), file_name="x.bin")
    with package.Client(base_url=live.url) as client:
        missing = get_job.sync(job_id="no-such-job", client=client)
        form = sdk("models").BodySubmitJob(file=upload, processor="no-such-processor")
        unknown = submit_job.sync(client=client, body=form)
    assert isinstance(missing, problem), missing
    assert (missing.status, missing.code) == (404, "job_not_found")
    assert isinstance(unknown, problem), unknown
    assert (unknown.status, unknown.code) == (422, "unknown_processor")
    assert "checksum" in unknown.available
