"""Imports run on each deployment profile, against a real origin server on 127.0.0.1 (so
private addresses are allowed here, except where a test says otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.imports import import_settings
from tests.support.origin import Origin, serving
from tests.support.settings import PROFILES


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return import_settings()


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving() as origin:
        yield origin
