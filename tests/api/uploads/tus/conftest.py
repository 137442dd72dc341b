"""Every test here runs on each deployment profile (tests/conftest.py); `uploads` is the app's
`ResumableUploads`, for what HTTP cannot show (a body cut off, a lease left by a dead server)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from filejob.resumable.service import ResumableUploads
from tests.support.settings import PROFILES


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def uploads(app: FastAPI) -> ResumableUploads:
    existing: ResumableUploads | None = getattr(app.state, "resumable", None)
    if existing is None:
        services = app.state.services
        existing = app.state.resumable = ResumableUploads.for_settings(
            services.settings, services.jobs
        )
    return existing
