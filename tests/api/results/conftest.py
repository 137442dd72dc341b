"""Every test here runs on each deployment profile."""

from __future__ import annotations

import pytest

from tests.support.settings import PROFILES


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return request.param
