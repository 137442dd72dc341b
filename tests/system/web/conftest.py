"""The browser tests' shared pieces: a live server that also offers the tests' processors
(`slow` keeps jobs running for as long as a test needs), headless Chromium, and pages on the
two screens the console is made for, each failing its test on a script error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from filejob.client.api import ApiError, FilejobClient
from tests.support.servers import (
    LiveServer,
    processors_pythonpath,
    start_server,
    stop_server,
)
from tests.support.wait import wait_until
from tests.system.web.driver import DESKTOP, PHONE, browser

# A `slow` job that runs until it is cancelled (or for 10 minutes), reporting progress.
LONG = {"steps": 1200, "step_seconds": 0.5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("web")
    env = {"PYTHONPATH": processors_pythonpath(root), "FILEJOB_WORKERS": "2"}

    process, url = start_server(root / "data", root / "server.log", env)
    try:
        yield LiveServer(url, process.pid, root / "data")
    finally:
        try:
            stop_unfinished(url)  # a long `slow` job would hold the shutdown's drain
        finally:
            stop_server(process)


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test's long jobs stop with it: the next test of the module gets the workers free."""
    yield
    if "server" in request.fixturenames:
        stop_unfinished(request.getfixturevalue("server").url)


def stop_unfinished(url: str, api_key: str | None = None) -> None:
    """Best effort: a job that ends meanwhile, or a server that fails, is the test's story."""
    with FilejobClient(url, api_key) as client:
        for status in ("queued", "running"):
            for job in client.jobs(status=status, limit=500):
                with contextlib.suppress(ApiError):
                    client.cancel(job["id"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as instance:
        yield instance


PageMaker = Callable[..., Page]


@pytest.fixture
def new_page(chromium: Browser) -> Iterator[PageMaker]:
    """Pages in fresh contexts (`new_page(PHONE)`, `new_page(DESKTOP, accept_downloads=True)`);
    a script error on any of them fails the test."""
    errors: list[str] = []
    contexts = []

    def make(screen: dict[str, Any] = DESKTOP, **options: Any) -> Page:
        context = chromium.new_context(**screen, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, errors


@pytest.fixture
def desktop(new_page: PageMaker) -> Page:
    return new_page(DESKTOP, accept_downloads=True)


@pytest.fixture
def phone(new_page: PageMaker) -> Page:
    return new_page(PHONE)


def submit_job(server: LiveServer, path: Path, processor: str, **params: Any) -> dict[str, Any]:
    """A job sent through the API, not the page (as another client would)."""
    with server.api() as client:
        return client.submit(path, processor, params or None)


def wait_for_status(server: LiveServer, job_id: str, *statuses: str) -> dict[str, Any]:
    with server.api() as client:

        def reached() -> dict[str, Any] | None:
            job = client.job(job_id)
            return job if job["status"] in statuses else None

        return wait_until(reached, timeout=60, interval=0.1, message=f"{job_id} not {statuses}")
